"""BlockPushMultiTarget: push the block onto target 1, then onto target 2 (the paper's "multi
target" task, ``BlockPushDiscontinuous`` in the original code)."""

from __future__ import annotations

import math

import numpy as np

from worldsim.envs.manipulation.base import BlockTaskEnv
from worldsim.envs.manipulation.scene import GREEN, RED

MIN_TARGET_DISTANCE = 0.15  # m, full-xy (the original compared x only)


class BlockPushMultiTargetEnv(BlockTaskEnv):
    """One block, two targets visited in order.

    Observation (state, 13-D): block_translation, block_orientation, effector_translation,
    effector_target_translation, target_translation, target_orientation, target2_translation,
    target2_orientation. Success: the block came within ``goal_tolerance`` (default 0.04 m) of
    target 1 and, after that, of target 2. Reward: 0.5 once target 1 was reached, 1.0 on
    success (which terminates). Episodes are truncated at 200 steps.
    """

    STATE_KEYS = ("block_translation", "block_orientation", "effector_translation",
                  "effector_target_translation", "target_translation", "target_orientation",
                  "target2_translation", "target2_orientation")
    DEFAULT_GOAL_TOLERANCE = 0.04

    def _build(self) -> None:
        self.block = self.scene.add_block(RED)
        self.targets = (self.scene.add_zone(GREEN), self.scene.add_zone(GREEN))

    def _randomize(self) -> None:
        block_xy = np.array([0.4, -0.2]) + self._uniform([-0.1, -0.15], [0.1, 0.15])
        self.scene.place(self.block, block_xy, self._uniform(0, math.pi), z=0.02)
        for _ in range(1000):
            first = np.array([0.4 + self._uniform(-0.1, 0.1), 0.0])
            second = np.array([0.4 + self._uniform(-0.1, 0.1), 0.4])
            if np.linalg.norm(first - second) >= MIN_TARGET_DISTANCE:
                break
        for target, xy in zip(self.targets, (first, second)):
            yaw = math.pi + self._uniform(-math.pi / 6, math.pi / 6)
            self.scene.place(target, xy, yaw, z=0.0005)

    def _start_episode(self) -> None:
        self._reached_first = False
        self._reached_second = False

    def target_distances(self) -> tuple[float, float]:
        """Block-to-target-1 and block-to-target-2 distances in metres."""
        block_xy = self.scene.pose_xy_yaw(self.block)[0]
        return tuple(float(np.linalg.norm(block_xy - self.scene.pose_xy_yaw(t)[0]))
                     for t in self.targets)

    def _state_observation(self) -> dict[str, np.ndarray]:
        block_xy, block_yaw = self.scene.pose_xy_yaw(self.block)
        (first_xy, first_yaw), (second_xy, second_yaw) = (self.scene.pose_xy_yaw(t)
                                                          for t in self.targets)
        return {"block_translation": block_xy, "block_orientation": block_yaw,
                **self._effector_observation(),
                "target_translation": first_xy, "target_orientation": first_yaw,
                "target2_translation": second_xy, "target2_orientation": second_yaw}

    def _evaluate(self):
        first, second = self.target_distances()
        self._reached_first |= first < self.goal_tolerance
        self._reached_second |= self._reached_first and second < self.goal_tolerance
        success = self._reached_second
        reward = 1.0 if success else 0.5 * self._reached_first
        return reward, success, {"reached_target1": self._reached_first,
                                 "target1_distance": first, "target2_distance": second}
