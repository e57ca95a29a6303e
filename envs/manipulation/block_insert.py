"""BlockInsert: slide a 4 cm cube into a tight U-shaped fixture (the Implicit BC "insert" task).

Fixture frame (metres): the origin is the *seated point*, where the block's centre rests when it
touches the back wall; the opening faces the local +y axis, so the insertion direction is local
-y. The fixture is placed like the BlockPush target (origin x = 0.4 + U(±0.1), y = 0.2 + U(±0.15),
yaw = π + U(±π/6)), so at yaw π the opening faces world -y, towards where the blocks start.
"""

from __future__ import annotations

import math

import numpy as np

from worldsim.envs.manipulation.base import wrap_angle
from worldsim.envs.manipulation.block_push import BlockPushEnv
from worldsim.envs.manipulation.oracles import (CONTACT_OFFSET, MOVE_SPEED, ORIENT_SPEED,
                                               PRE_PUSH_OFFSET, ARRIVAL_RADIUS, PUSH_SPEED,
                                               BlockOracle, face_misalignment, step_towards, unit)
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
    The fixture body's origin *is* the seated point, so ``goal_distance`` measures to where the
    block rests inside the U (the original measured to the fixture origin, an open item there). The
    inside is 4.6 cm wide (6 mm clearance): a centred block must be square to the slot within
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


# InsertOracle geometry: y is the block centre's local y in the fixture frame (0 = seated).
STAGE_BACK = 0.025  # m: the stage push aims this far outside the gate (room to turn the block)
STAGE_TOLERANCE = 0.015  # m: the gate alignment takes over once the block is this near
STAGE_ORIENT_START, STAGE_ORIENT_DONE = 0.35, 0.1  # rad of face misalignment (stage push)
GATE_Y = 0.075  # m: where the block is squared and centred, its front 2.5 cm from the opening
GATE_X, GATE_YAW = 0.0015, 0.02  # m, rad: alignment the gate demands (the slack is 3 mm a side)
TURN_DONE = 0.01  # rad: yaw error at which turning the block at the gate stops
TURN_ROOM = 0.015  # m: beyond GATE_Y + this a turn may start from behind (it drags the block in)
MAX_TURN = 0.2  # rad per step that the tip circles the block while turning it
GATE_STEP, SEAT_STEP = 0.015, 0.012  # m per push step towards the gate / into the slot
LOOKAHEAD = 0.025  # m along the axis that the final push aims ahead of the block
FINE_NOISE_SCALE = 0.1  # action noise is cut to this fraction once staged (needs ~1 mm precision)


class InsertOracle(BlockOracle):
    """Slide-then-insert demonstrator for BlockInsert (reads the env, not the observation).

    "stage": push the block to a staging point on the fixture axis, ``GATE_Y + STAGE_BACK`` out
    from the seat, turning a face towards the push first when it is off by > 0.35 rad.
    "gate": square the block to the slot (circle it in contact, from behind while there is room,
    else from the side so the tip swings away from the fixture), centre it on the axis with
    small pushes on a side face, and push it straight to ``GATE_Y``, until it is within
    ``GATE_X`` / ``GATE_YAW`` there. "seat": push it along the axis into the slot, slowly, to the
    seated point; if it stalls the tip backs out and retries. A block knocked off the axis goes
    back to "stage". Approach paths circle the pushed block; the reset distribution keeps the
    block in front of the fixture, so they do not cross it. Action noise (``noise_std``) is
    applied in full while staging and scaled by ``FINE_NOISE_SCALE`` afterwards.
    """

    def reset(self) -> None:
        self.phase, self.push_phase, self._task = "stage", "approach", None
        self._turn, self._orient_steps, self._behind = 0.2, 0, True
        self._last_y, self._stalled = 0.0, 0
        self._noise, self._arrival = self.noise_std, 0.002

    def act(self, observation=None) -> np.ndarray:
        """As ``BlockOracle.act``, with the noise scaled by ``FINE_NOISE_SCALE`` after staging."""
        self._noise = self.noise_std * (1.0 if self.phase == "stage" else FINE_NOISE_SCALE)
        self._arrival = 0.002 + 2 * self._noise  # m: a waypoint counts as reached
        action = self._action(self.env.scene.effector_target.copy())
        if self._noise > 0:
            action = action + self.env.np_random.normal(0.0, self._noise, size=2)
        space = self.env.action_space
        return np.clip(action, space.low, space.high).astype(np.float32)

    def _action(self, effector):
        block_xy, block_yaw = self._pose(self.env.block)
        seat, yaw = self._pose(self.env.target)
        normal = np.array([-math.sin(yaw), math.cos(yaw)])  # local +y: out of the opening
        across = np.array([math.cos(yaw), math.sin(yaw)])  # local +x
        x, y = self.env.to_fixture_frame(block_xy)
        error = face_misalignment(-normal, block_yaw)  # rad the block must turn to be square
        stage = seat + (GATE_Y + STAGE_BACK) * normal
        if self.phase == "stage" and np.linalg.norm(block_xy - stage) < STAGE_TOLERANCE:
            self.phase = "gate"
        elif self.phase != "stage" and y > OPENING_Y + 0.01 and (
                abs(x) > 0.05 or y > GATE_Y + 0.06):
            self.phase = "stage"  # knocked off the axis: start over
        aligned = abs(x) < GATE_X and abs(error) < GATE_YAW
        if self.phase == "gate" and (y < GATE_Y + 0.004 and aligned or y < OPENING_Y + 0.022):
            self.phase = "seat"
        if self.phase == "stage":
            remaining = float(np.linalg.norm(stage - block_xy))
            direction = unit(stage - block_xy)
            orient_start = STAGE_ORIENT_START if remaining > 0.06 else math.inf
            task = ("stage", direction, direction, orient_start, PUSH_SPEED, remaining)
        elif self.phase == "seat":
            aim = seat + max(y - LOOKAHEAD, 0.0) * normal
            forward = unit(aim - block_xy) if y > 0.002 else -normal
            task = ("seat", forward, -normal, math.inf, SEAT_STEP, y)
        elif abs(error) > GATE_YAW:  # square it: circle it in contact, from behind or from the
            # side that makes the tip swing away from the fixture (CCW from local +x)
            start = -normal if y > GATE_Y + TURN_ROOM else -math.copysign(1, error) * across
            task = ("turn", start, -normal, GATE_YAW, 0.0, 0.0)
        elif abs(x) > GATE_X:  # centre it on the axis with a push on its side face
            task = ("side", -math.copysign(1, x) * across, -normal, math.inf, 0.01, abs(x))
        else:  # forward to the gate
            task = ("gate", -normal, -normal, math.inf, GATE_STEP, max(y - GATE_Y, 0.0))
        if task[0] != self._task:
            self._task, self.push_phase = task[0], "approach"
        return self._push(effector, block_xy, block_yaw, y, *task[1:])

    def _push(self, effector, block_xy, block_yaw, y, direction, face, orient_start, step,
              remaining):
        """The next action of approach / orient / push / back-out along ``direction``; a phase
        that ends hands over to the next within the same step (a demonstrator that pauses at
        phase switches teaches a cloned policy to stand still there)."""
        for _ in range(4):
            action = self._push_phase_step(effector, block_xy, block_yaw, y, direction, face,
                                           orient_start, step, remaining)
            if action is not None:
                return action
        return np.zeros(2)

    def _push_phase_step(self, effector, block_xy, block_yaw, y, direction, face, orient_start,
                         step, remaining):
        """One step of the current push phase, or None when that phase just ended.

        ``face``: the direction a block face must point along (turned first when it is off by
        more than ``orient_start`` rad); ``step``: push speed (m per step); ``remaining``: how far
        (m) the block still has to go.
        """
        error = face_misalignment(face, block_yaw)
        if self.push_phase == "approach":
            pre_push = block_xy - PRE_PUSH_OFFSET * direction
            if np.linalg.norm(effector - pre_push) > max(self._arrival, ARRIVAL_RADIUS):
                return step_towards(effector, _around(effector, pre_push, block_xy), MOVE_SPEED)
            self.push_phase = "orient" if abs(error) > orient_start else "push"
            self._behind = float(direction @ face) > 0.7
            self._turn, self._orient_steps = math.copysign(min(MAX_TURN, 4 * abs(error)), error), 0
            self._last_y, self._stalled = y, 0
            return None
        if self.push_phase == "orient":
            self._orient_steps += 1
            done = TURN_DONE if self._task == "turn" else STAGE_ORIENT_DONE
            # circling from behind drags the block forward: stop near the slot, turn from the side
            pushed_in = self._task == "turn" and y < GATE_Y - 0.01 and self._behind
            if abs(error) < done or self._orient_steps > 30 or pushed_in:
                self.push_phase = "approach"
                return None
            if error * self._turn < 0:  # overshot: turn back, more gently
                self._turn = -0.5 * self._turn
            radial = unit(effector - block_xy)
            angle = math.atan2(radial[1], radial[0]) + self._turn
            waypoint = block_xy + CONTACT_OFFSET * np.array([math.cos(angle), math.sin(angle)])
            return step_towards(effector, waypoint, ORIENT_SPEED)
        if self.push_phase == "backout":
            retreat = block_xy - (PRE_PUSH_OFFSET + 0.03) * direction
            if np.linalg.norm(effector - retreat) < self._arrival:
                self.push_phase = "approach"
            return step_towards(effector, retreat, MOVE_SPEED)
        relative = effector - block_xy
        behind = -float(relative @ direction)
        lateral = float(relative @ np.array([-direction[1], direction[0]]))
        slipped = abs(lateral) > 0.01 or not 0.01 < behind < PRE_PUSH_OFFSET + 0.02
        if slipped or abs(error) > orient_start + 0.1:
            self.push_phase = "approach"
            return None
        self._stalled = self._stalled + 1 if y > self._last_y - 0.001 else 0
        self._last_y = min(self._last_y, y)
        if self._task == "seat" and self._stalled >= 3:
            self.push_phase = "backout"
            return None
        waypoint = block_xy + (min(step, remaining) - CONTACT_OFFSET) * direction
        return step_towards(effector, waypoint, step + 0.01)


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
