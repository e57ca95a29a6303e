"""BlockPushMultimodal: two blocks, two targets; any one-to-one assignment succeeds."""

from __future__ import annotations

import math

import numpy as np

from worldsim.envs.manipulation.base import BlockTaskEnv, sample_separated
from worldsim.envs.manipulation.scene import GREEN, RED

MIN_BLOCK_DISTANCE = 0.1  # m, full-xy
MIN_TARGET_DISTANCE = 0.12


class BlockPushMultimodalEnv(BlockTaskEnv):
    """Push each of two blocks onto a different target, in any order and any pairing.

    Observation (state, 16-D): block_translation, block_orientation, block2_translation,
    block2_orientation, effector_translation, effector_target_translation, target_translation,
    target_orientation, target2_translation, target2_orientation. Success: each block is within
    ``goal_tolerance`` (default 0.04 m) of its closest target and the two closest targets differ.
    Reward: the number of distinct targets holding a block within tolerance, over 2; success
    terminates. Episodes are truncated at 200 steps.
    """

    STATE_KEYS = ("block_translation", "block_orientation", "block2_translation",
                  "block2_orientation", "effector_translation", "effector_target_translation",
                  "target_translation", "target_orientation", "target2_translation",
                  "target2_orientation")
    DEFAULT_GOAL_TOLERANCE = 0.04

    def _build(self) -> None:
        self.blocks = (self.scene.add_block(RED), self.scene.add_block(GREEN))
        self.targets = (self.scene.add_zone(GREEN), self.scene.add_zone(RED))

    def _randomize(self) -> None:
        blocks = sample_separated(
            self.np_random, lambda: np.array([0.4, -0.2]) + self._uniform([-0.1, -0.15], [0.1, 0.15]),
            2, MIN_BLOCK_DISTANCE)
        targets = sample_separated(
            self.np_random, lambda: np.array([0.4, 0.2]) + self._uniform([-0.1, -0.15], [0.1, 0.15]),
            2, MIN_TARGET_DISTANCE)
        for block, xy in zip(self.blocks, blocks):
            self.scene.place(block, xy, self._uniform(0, math.pi), z=0.02)
        for target, xy in zip(self.targets, targets):
            self.scene.place(target, xy, math.pi + self._uniform(-math.pi / 6, math.pi / 6),
                             z=0.0005)

    def distance_matrix(self) -> np.ndarray:
        """(2 blocks, 2 targets) xy distances in metres."""
        blocks = [self.scene.pose_xy_yaw(b)[0] for b in self.blocks]
        targets = [self.scene.pose_xy_yaw(t)[0] for t in self.targets]
        return np.array([[np.linalg.norm(b - t) for t in targets] for b in blocks])

    def _state_observation(self) -> dict[str, np.ndarray]:
        (b1, y1), (b2, y2) = (self.scene.pose_xy_yaw(b) for b in self.blocks)
        (t1, ty1), (t2, ty2) = (self.scene.pose_xy_yaw(t) for t in self.targets)
        return {"block_translation": b1, "block_orientation": y1,
                "block2_translation": b2, "block2_orientation": y2,
                **self._effector_observation(),
                "target_translation": t1, "target_orientation": ty1,
                "target2_translation": t2, "target2_orientation": ty2}

    def _evaluate(self):
        distances = self.distance_matrix()
        closest = distances.argmin(axis=1)
        within = distances.min(axis=1) < self.goal_tolerance
        occupied = {int(t) for t, w in zip(closest, within) if w}
        success = bool(within.all() and closest[0] != closest[1])
        return len(occupied) / 2.0, success, {"n_targets_occupied": len(occupied)}
