"""The shared pybullet scene of the block tasks: an xArm6 with a cylindrical tip over a table.

Units are metres, radians and seconds throughout. The physics follows the Implicit BC block
environments: a 1/240 s physics step, 24 substeps per 10 Hz control step, inverse kinematics
once per control step, joint position control.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import weakref
from dataclasses import dataclass

import numpy as np


@contextlib.contextmanager
def _quiet(fd: int):
    """Silences C-level writes to file descriptor ``fd`` (1 or 2) inside the block."""
    (sys.stdout if fd == 1 else sys.stderr).flush()
    try:
        saved = os.dup(fd)
    except OSError:  # no real descriptor (e.g. some embedded runners)
        yield
        return
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)


with _quiet(2):  # pybullet prints its build time on import
    import pybullet
    import pybullet_data
    from pybullet_utils import bullet_client


PHYSICS_HZ = 240
CONTROL_HZ = 10
SUBSTEPS = PHYSICS_HZ // CONTROL_HZ  # 24
SETTLE_SUBSTEPS = 100

EFFECTOR_HEIGHT = 0.06  # z of the flange above the floor, m; the tip hangs 5 cm below it
EFFECTOR_START_XY = (0.3, -0.4)
WORKSPACE_X = (0.15, 0.7)
WORKSPACE_Y = (-0.5, 0.5)

BLOCK_SIZE = 0.04
BLOCK_MASS = 0.01
BLOCK_FRICTION = 1.0
BLOCK_ROLLING_FRICTION = 1e-4

TIP_RADIUS = 0.005
TIP_LENGTH = 0.05
_ARM_LINK = 6  # link6, the flange
_ARM_JOINTS = (1, 2, 3, 4, 5, 6)
_JOINT_FORCE = 5 * 240.0
_DOWN = pybullet.getQuaternionFromEuler((0.0, math.pi, 0.0))

RED = (1.0, 0.34, 0.35, 1.0)
GREEN = (0.35, 0.8, 0.35, 1.0)
BLUE = (0.3, 0.45, 1.0, 1.0)
YELLOW = (1.0, 0.85, 0.2, 1.0)



def _disconnect(client) -> None:
    if client._client >= 0:
        client.disconnect()
        client._client = -1


@dataclass(frozen=True)
class Camera:
    """A pinhole camera looking at the workspace; images are (height, width, 3) uint8."""

    eye: tuple[float, float, float] = (1.0, 0.0, 0.75)
    target: tuple[float, float, float] = (0.4, 0.0, 0.0)
    vertical_fov_deg: float = 50.0  # fy = 0.803 * width at a 4:3 aspect, as in the original
    near: float = 0.01
    far: float = 10.0


class XArmScene:
    """One pybullet world (its own DIRECT connection) with the arm, the tip and the floor.

    Before every episode ``reset_world`` rebuilds it from nothing, and the task adds its blocks
    and targets with ``add_block`` / ``add_zone`` / ``add_fixed_body``: the same seed then
    gives exactly the same episode, whatever ran before.
    """

    def __init__(self) -> None:
        with _quiet(1):  # pybullet prints argv[0] from C on every connection
            self.client = bullet_client.BulletClient(connection_mode=pybullet.DIRECT)
        # Disconnect before interpreter shutdown: BulletClient.__del__ fails once the
        # pybullet module is torn down.
        self._finalizer = weakref.finalize(self, _disconnect, self.client)
        self.client.setAdditionalSearchPath(pybullet_data.getDataPath())
        self.home_joints: np.ndarray | None = None
        self.reset_world()

    def reset_world(self) -> None:
        """Rebuilds the world from nothing: floor, arm at its home pose, tip.

        Called before every episode. pybullet's saveState/restoreState does not reset the
        solver's cached state, so an episode after a restore differed (by ~1e-6 m) from the
        same-seed episode right after construction; a rebuild (~50 ms) is exact.
        """
        c = self.client
        c.resetSimulation()
        c.setPhysicsEngineParameter(enableFileCaching=0, deterministicOverlappingPairs=1)
        c.setTimeStep(1.0 / PHYSICS_HZ)
        c.setGravity(0, 0, -9.8)
        c.loadURDF("plane.urdf", [0, 0, -0.001])
        self._add_workspace_visual()
        self.robot = c.loadURDF("xarm/xarm6_robot.urdf", [0, 0, 0], useFixedBase=True)
        for link in range(-1, c.getNumJoints(self.robot)):
            c.changeDynamics(self.robot, link, linearDamping=0, angularDamping=0)
        if self.home_joints is None:
            self.home_joints = self._solve_home_joints()
        for joint, angle in zip(_ARM_JOINTS, self.home_joints):
            c.resetJointState(self.robot, joint, angle)
        self.tip = self._attach_tip()
        self.effector_target = np.array(EFFECTOR_START_XY, dtype=np.float64)
        self.drive_to_target()

    # ----------------------------------------------------------------------------- building
    def _add_workspace_visual(self) -> None:
        """A flat dark table top over the workspace (visual only, like the original's)."""
        half_x, half_y = (WORKSPACE_X[1] - WORKSPACE_X[0]) / 2 + 0.05, WORKSPACE_Y[1] + 0.05
        visual = self.client.createVisualShape(pybullet.GEOM_BOX, halfExtents=(half_x, half_y, 0.0004),
                                               rgbaColor=(0.22, 0.22, 0.25, 1))
        self.client.createMultiBody(0, -1, visual,
                                    basePosition=(sum(WORKSPACE_X) / 2, 0.0, -0.0005))

    def _attach_tip(self) -> int:
        """A thin cylinder (r 5 mm, 5 cm long) fixed under the flange, reaching 1 cm above the floor."""
        c = self.client
        shape = c.createCollisionShape(pybullet.GEOM_CYLINDER, radius=TIP_RADIUS, height=TIP_LENGTH)
        visual = c.createVisualShape(pybullet.GEOM_CYLINDER, radius=TIP_RADIUS, length=TIP_LENGTH,
                                     rgbaColor=(0.6, 0.6, 0.6, 1))
        flange = c.getLinkState(self.robot, _ARM_LINK, computeForwardKinematics=True)
        tip = c.createMultiBody(0.01, shape, visual, basePosition=flange[4])
        self._fix_tip(tip)
        for link in range(-1, c.getNumJoints(self.robot)):
            c.setCollisionFilterPair(self.robot, tip, link, -1, enableCollision=0)
        return tip

    def _fix_tip(self, tip: int) -> int:
        return self.client.createConstraint(
            self.robot, _ARM_LINK, tip, -1, pybullet.JOINT_FIXED, (0, 0, 0),
            parentFramePosition=(0, 0, TIP_LENGTH / 2), childFramePosition=(0, 0, 0))

    def _solve_home_joints(self) -> np.ndarray:
        """Joint angles that put the tool point at the start pose, pointing down."""
        for _ in range(20):
            joints = self._inverse_kinematics(np.array(EFFECTOR_START_XY))
            for joint, angle in zip(_ARM_JOINTS, joints):
                self.client.resetJointState(self.robot, joint, angle)
        return np.asarray(joints)

    def add_block(self, rgba: tuple[float, ...], position=(0.4, -0.2)) -> int:
        """A 4 cm, 10 g cube with the block tasks' friction, standing on the floor."""
        c = self.client
        half = BLOCK_SIZE / 2
        shape = c.createCollisionShape(pybullet.GEOM_BOX, halfExtents=[half] * 3)
        visual = c.createVisualShape(pybullet.GEOM_BOX, halfExtents=[half] * 3, rgbaColor=rgba)
        block = c.createMultiBody(BLOCK_MASS, shape, visual, basePosition=(*position, half))
        c.changeDynamics(block, -1, lateralFriction=BLOCK_FRICTION,
                         rollingFriction=BLOCK_ROLLING_FRICTION)
        return block

    def add_zone(self, rgba: tuple[float, ...], half_extents=(0.03, 0.03)) -> int:
        """A flat visual-only target patch (no collision shape)."""
        visual = self.client.createVisualShape(
            pybullet.GEOM_BOX, halfExtents=(*half_extents, 0.0005), rgbaColor=rgba)
        return self.client.createMultiBody(0, -1, visual, basePosition=(0.4, 0.2, 0.0005))

    def add_fixed_body(self, boxes: list[tuple[tuple[float, float, float], tuple[float, float, float]]],
                       rgba: tuple[float, ...], friction: float = 0.3) -> int:
        """A static body made of boxes given as (half_extents, local_offset) pairs."""
        c = self.client
        half_extents = [list(h) for h, _ in boxes]
        offsets = [list(o) for _, o in boxes]
        shape = c.createCollisionShapeArray([pybullet.GEOM_BOX] * len(boxes),
                                            halfExtents=half_extents, collisionFramePositions=offsets)
        visual = c.createVisualShapeArray([pybullet.GEOM_BOX] * len(boxes), halfExtents=half_extents,
                                          visualFramePositions=offsets, rgbaColors=[rgba] * len(boxes))
        body = c.createMultiBody(0, shape, visual, basePosition=(0.4, 0.2, 0))
        c.changeDynamics(body, -1, lateralFriction=friction)
        return body

    # ------------------------------------------------------------------------------ episode
    def place(self, body: int, xy: np.ndarray, yaw: float, z: float = 0.0) -> None:
        """Teleports a body to (x, y, z) with the given yaw, at rest."""
        orientation = self.client.getQuaternionFromEuler((0.0, 0.0, float(yaw)))
        self.client.resetBasePositionAndOrientation(body, (float(xy[0]), float(xy[1]), z), orientation)
        self.client.resetBaseVelocity(body, (0, 0, 0), (0, 0, 0))

    def settle(self, substeps: int = SETTLE_SUBSTEPS) -> None:
        for _ in range(substeps):
            self.client.stepSimulation()

    def move_effector(self, delta_xy: np.ndarray) -> None:
        """One control step: shift the effector target, solve IK, run the 24 physics substeps."""
        target = self.effector_target + delta_xy
        target[0] = np.clip(target[0], *WORKSPACE_X)
        target[1] = np.clip(target[1], *WORKSPACE_Y)
        self.effector_target = target
        self.drive_to_target()
        for _ in range(SUBSTEPS):
            self.client.stepSimulation()

    def drive_to_target(self) -> None:
        joints = self._inverse_kinematics(self.effector_target)
        self.client.setJointMotorControlArray(
            self.robot, _ARM_JOINTS, pybullet.POSITION_CONTROL, targetPositions=joints,
            forces=[_JOINT_FORCE] * len(_ARM_JOINTS))

    def _inverse_kinematics(self, xy: np.ndarray) -> list[float]:
        """Joint angles putting the flange over ``xy`` at EFFECTOR_HEIGHT, pointing down."""
        rest = [self.client.getJointState(self.robot, j)[0] for j in _ARM_JOINTS]
        rest[0] = rest[1] = 0.0
        position = (float(xy[0]), float(xy[1]), EFFECTOR_HEIGHT)
        joints = self.client.calculateInverseKinematics(
            self.robot, _ARM_LINK, position, _DOWN, lowerLimits=[-17.0] * 6,
            upperLimits=[17.0] * 6, jointRanges=[34.0] * 6, restPoses=rest,
            maxNumIterations=100, residualThreshold=1e-10)
        return list(joints[:6])

    # -------------------------------------------------------------------------------- reading
    def effector_xy(self) -> np.ndarray:
        """Measured xy of the flange and tip (forward kinematics)."""
        flange = self.client.getLinkState(self.robot, _ARM_LINK, computeForwardKinematics=True)
        return np.asarray(flange[4][:2])

    def pose_xy_yaw(self, body: int) -> tuple[np.ndarray, float]:
        """(xy, yaw) of a body's base."""
        position, orientation = self.client.getBasePositionAndOrientation(body)
        yaw = self.client.getEulerFromQuaternion(orientation)[2]
        return np.asarray(position[:2]), float(yaw)

    def render(self, height: int, width: int, camera: Camera = Camera()) -> np.ndarray:
        """An RGB image (height, width, 3) uint8 from the software renderer."""
        c = self.client
        view = c.computeViewMatrix(camera.eye, camera.target, (0, 0, 1))
        projection = c.computeProjectionMatrixFOV(camera.vertical_fov_deg, width / height,
                                                  camera.near, camera.far)
        _, _, rgba, _, _ = c.getCameraImage(width, height, view, projection,
                                            renderer=pybullet.ER_TINY_RENDERER)
        return np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[..., :3]

    def close(self) -> None:
        self._finalizer()
        self.client = None
