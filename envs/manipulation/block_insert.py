"""BlockInsert: slide a 4 cm cube into a tight U-shaped fixture (the Implicit BC "insert" task).

Fixture frame (metres): the origin is the *seated point*, where the block's centre rests when it
touches the back wall; the opening faces the local +y axis, so the insertion direction is local
-y. The fixture is placed like the BlockPush target (origin x = 0.4 + U(±0.1), y = 0.2 + U(±0.15),
yaw = π + U(±π/6)), so at yaw π the opening faces world -y, towards where the blocks start.
"""

from __future__ import annotations

import math

import numpy as np

from worldsim.envs.manipulation.block_push import BlockPushEnv
from worldsim.envs.manipulation.base import wrap_angle
from worldsim.envs.manipulation.oracles import (CONTACT_OFFSET, MOVE_SPEED, ORIENT_DONE, ORIENT_SPEED,
                                               PRE_PUSH_OFFSET, PUSH_SPEED, BlockOracle,
                                               face_misalignment)
from worldsim.envs.manipulation.scene import BLOCK_SIZE, BLUE, RED

SLOT_CLEARANCE = 0.006  # m of slot width beyond the block, in total (3 mm each side)
SLOT_WIDTH = BLOCK_SIZE + SLOT_CLEARANCE  # 0.046 m inside width
SLOT_DEPTH = 0.05  # m from the back wall's inner face to the opening line
WALL_THICKNESS = 0.02  # m, back and side walls
WALL_HEIGHT = 0.04  # m
FIXTURE_FRICTION = 0.3
BACK_FACE_Y = -BLOCK_SIZE / 2  # local y of the back wall's inner face (the seat touches it)
OPENING_Y = BACK_FACE_Y + SLOT_DEPTH  # local y of the opening line, +0.03 m


def fixture_boxes() -> list[tuple[tuple[float, float, float], tuple[float, float, float]]]:
    """(half_extents, local_offset) of the back wall and the two side walls, in metres."""
    half_height = WALL_HEIGHT / 2
    outer_half_width = SLOT_WIDTH / 2 + WALL_THICKNESS
    back = ((outer_half_width, WALL_THICKNESS / 2, half_height),
            (0.0, BACK_FACE_Y - WALL_THICKNESS / 2, half_height))
    side_x = SLOT_WIDTH / 2 + WALL_THICKNESS / 2
    sides = [((WALL_THICKNESS / 2, SLOT_DEPTH / 2, half_height),
              (sign * side_x, BACK_FACE_Y + SLOT_DEPTH / 2, half_height)) for sign in (-1, 1)]
    return [back, *sides]


class BlockInsertEnv(BlockPushEnv):
    """Push the red block into the blue U-fixture until it is seated against the back wall.

    Observation (state, 10-D): as BlockPush, with target_translation = the fixture's seated point
    and target_orientation = the fixture yaw (rad; the opening faces the fixture's local +y).
    Action: (dx, dy) of the effector target in metres, each in [-0.1, 0.1].
    Success: the block centre is within ``goal_tolerance`` (default 0.02 m, as the suite) of the
    seated point *and* inside the U: past the opening line, between the side walls and resting
    on the floor (not on top of a wall). Reward: best-so-far ``1 - d / d0`` with d the distance
    to the seated point, 1.0 and termination on success. info: is_success, goal_distance (m).
    The inside width is 4.6 cm (6 mm clearance), so the block must be square to the slot within
    about 0.15 rad to enter.
    """

    def _build(self) -> None:
        self.block = self.scene.add_block(RED)
        self.target = self.scene.add_fixed_body(fixture_boxes(), BLUE, friction=FIXTURE_FRICTION)

    def _randomize(self) -> None:
        block_xy = np.array([0.4, -0.2]) + self._uniform([-0.1, -0.15], [0.1, 0.15])
        fixture_xy = np.array([0.4, 0.2]) + self._uniform([-0.1, -0.15], [0.1, 0.15])
        self.scene.place(self.block, block_xy, self._uniform(0, math.pi), z=BLOCK_SIZE / 2)
        self.scene.place(self.target, fixture_xy,
                         math.pi + self._uniform(-math.pi / 6, math.pi / 6), z=0.0)

    def to_fixture_frame(self, xy: np.ndarray) -> np.ndarray:
        """World xy (m) expressed in the fixture frame (origin at the seated point)."""
        origin, yaw = self.scene.pose_xy_yaw(self.target)
        c, s = math.cos(yaw), math.sin(yaw)
        dx, dy = np.asarray(xy, dtype=np.float64) - origin
        return np.array([c * dx + s * dy, -s * dx + c * dy])

    def block_inside(self) -> bool:
        """Whether the block centre is past the opening line, between the walls, on the floor."""
        position, _ = self.scene.client.getBasePositionAndOrientation(self.block)
        local = self.to_fixture_frame(np.asarray(position[:2]))
        return bool(local[1] < OPENING_Y and abs(local[0]) < SLOT_WIDTH / 2
                    and position[2] < 0.75 * BLOCK_SIZE)

    def _evaluate(self):
        distance = self.goal_distance()
        success = distance < self.goal_tolerance and self.block_inside()
        progress = 1.0 - distance / max(self._initial_distance, 1e-7)
        self._best_reward = max(self._best_reward, progress)
        reward = 1.0 if success else self._best_reward
        return reward, success, {"goal_distance": distance}



STAGE_OFFSET = 0.085  # m from the seated point out along the opening normal to the staging point
STAGE_TOLERANCE = 0.02  # m; the slot push takes over once the block is this near the staging point
LOOKAHEAD = 0.04  # m along the axis that the slot push aims ahead of the block (pure pursuit)
SLOT_ORIENT_START = 0.08  # rad of yaw error (block vs slot) that makes the slot push re-orient
SLOW_ZONE = OPENING_Y + BLOCK_SIZE  # local y (m) below which the slot push slows down
SLOT_STEP, SEAT_STEP = 0.025, 0.012  # m per step of the slot push outside / inside SLOW_ZONE
STEER_GAIN, MAX_STEER = 0.05, 0.008  # m of sideways contact offset per rad of yaw error, its cap


class InsertOracle(BlockOracle):
    """Slide-then-insert demonstrator for BlockInsert (reads the env, not the observation).

    Stage: push the block to the staging point ``STAGE_OFFSET`` in front of the opening, turning
    a face towards the push direction first when it is off by > 0.2 rad (as the push oracle).
    Slot: turn the block square to the slot (within ``ORIENT_DONE``), then push along the
    fixture axis, aiming ``LOOKAHEAD`` ahead on it and slowing near the seat. Both re-approach
    when the tip slips off the block or the block turns; a block that stops moving in the slot
    makes the tip back out and retry; a block knocked off the axis goes back to staging.
    """

    def reset(self) -> None:
        self.phase, self.push_phase = "stage", "approach"
        self._turn, self._orient_steps = 0.2, 0
        self._last_y, self._stalled = 0.0, 0

    def _action(self, effector):
        block_xy, block_yaw = self._pose(self.env.block)
        seat, yaw = self._pose(self.env.target)
        normal = np.array([-math.sin(yaw), math.cos(yaw)])  # out of the opening
        x, y = self.env.to_fixture_frame(block_xy)
        if self.phase == "stage" and np.linalg.norm(block_xy - seat - STAGE_OFFSET * normal) < STAGE_TOLERANCE:
            self.phase, self.push_phase = "slot", "approach"
        elif self.phase == "slot" and y > OPENING_Y + 0.01 and (abs(x) > 0.045 or y > STAGE_OFFSET + 0.05):
            self.phase, self.push_phase = "stage", "approach"  # knocked off the axis: start over
        if self.phase == "stage":
            goal = seat + STAGE_OFFSET * normal
            direction = _unit(goal - block_xy)
            face, orient_start, step = direction, 0.2, PUSH_SPEED
            remaining = float(np.linalg.norm(goal - block_xy))
        else:
            aim = seat + max(y - LOOKAHEAD, 0.0) * normal
            direction = _unit(aim - block_xy) if np.linalg.norm(aim - block_xy) > 1e-3 else -normal
            face, orient_start = -normal, SLOT_ORIENT_START
            step, remaining = (SLOT_STEP if y > SLOW_ZONE else SEAT_STEP), y
        can_orient = y > OPENING_Y + 0.005 and (self.phase == "slot" or remaining > 0.06)
        return self._push(effector, block_xy, block_yaw, y, direction, face,
                          orient_start if can_orient else math.inf, step, remaining)

    def _push(self, effector, block_xy, block_yaw, y, direction, face, orient_start, step, remaining):
        """One step of approach / orient / push / back-out for a push along ``direction``."""
        error = face_misalignment(face, block_yaw)
        if self.push_phase == "approach":
            pre_push = block_xy - PRE_PUSH_OFFSET * direction
            if np.linalg.norm(effector - pre_push) > 0.002:
                return _step_towards(effector, _around(effector, pre_push, block_xy), MOVE_SPEED)
            self.push_phase = "orient" if abs(error) > orient_start else "push"
            self._turn, self._orient_steps = math.copysign(0.2, error), 0
            self._last_y, self._stalled = y, 0
            return np.zeros(2)
        if self.push_phase == "orient":
            self._orient_steps += 1
            if abs(error) < ORIENT_DONE or self._orient_steps > 30:
                self.push_phase = "approach"
                return np.zeros(2)
            if error * self._turn < 0:  # overshot: turn back, more gently
                self._turn = -0.5 * self._turn
            radial = _unit(effector - block_xy)
            angle = math.atan2(radial[1], radial[0]) + self._turn
            waypoint = block_xy + CONTACT_OFFSET * np.array([math.cos(angle), math.sin(angle)])
            return _step_towards(effector, waypoint, ORIENT_SPEED)
        if self.push_phase == "backout":
            retreat = block_xy - (PRE_PUSH_OFFSET + 0.03) * direction
            if np.linalg.norm(effector - retreat) < 0.002:
                self.push_phase = "approach"
            return _step_towards(effector, retreat, MOVE_SPEED)
        relative = effector - block_xy
        behind = -float(relative @ direction)
        side = np.array([-direction[1], direction[0]])
        lateral = float(relative @ side)
        if abs(lateral) > 0.012 or not 0.01 < behind < PRE_PUSH_OFFSET + 0.02 or abs(error) > orient_start + 0.1:
            self.push_phase = "approach"
            return np.zeros(2)
        self._stalled = self._stalled + 1 if y > self._last_y - 0.001 else 0
        self._last_y = min(self._last_y, y)
        if self.phase == "slot" and self._stalled >= 3:
            self.push_phase = "backout"
            return np.zeros(2)
        # Pushing off-centre turns the block: offset the contact to steer the yaw error to zero.
        steer = 0.0 if self.phase == "stage" else np.clip(-STEER_GAIN * error, -MAX_STEER, MAX_STEER)
        waypoint = block_xy + (min(step, remaining) - CONTACT_OFFSET) * direction + steer * side
        return _step_towards(effector, waypoint, step + 0.01)


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-9)


def _step_towards(position: np.ndarray, waypoint: np.ndarray, max_step: float) -> np.ndarray:
    delta = waypoint - position
    distance = float(np.linalg.norm(delta))
    return delta if distance <= max_step else delta * (max_step / distance)


def _around(effector: np.ndarray, waypoint: np.ndarray, block_xy: np.ndarray) -> np.ndarray:
    """``waypoint``, or a point 0.6 rad further round the block when it lies on the far side."""
    radial = effector - block_xy
    angle = math.atan2(radial[1], radial[0])
    turn = wrap_angle(math.atan2(*(waypoint - block_xy)[::-1]) - angle)
    if abs(turn) < 0.7:
        return waypoint
    angle += math.copysign(0.6, turn)
    radius = max(0.06, min(float(np.linalg.norm(radial)), 0.1))
    return block_xy + radius * np.array([math.cos(angle), math.sin(angle)])
