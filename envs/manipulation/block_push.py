"""BlockPush: slide a 4 cm cube into a target zone (the Implicit BC "single target" task)."""

from __future__ import annotations

import math

import numpy as np

from worldsim.envs.manipulation.base import BlockTaskEnv
from worldsim.envs.manipulation.scene import GREEN, RED


class BlockPushEnv(BlockTaskEnv):
    """Push the red block into the green target zone.

    Observation (state): block_translation (2), block_orientation (1), effector_translation (2),
    effector_target_translation (2), target_translation (2), target_orientation (1) — 10-D.
    Action: (dx, dy) of the effector target in metres, each in [-0.1, 0.1].
    Reward: best-so-far ``1 - d / d0`` (d = block–target distance, d0 its value at reset);
    1.0 and termination once d < ``goal_tolerance`` (default 0.02 m, the paper's evaluation
    tolerance). Episodes are truncated at 100 steps by the registered TimeLimit.
    """

    STATE_KEYS = ("block_translation", "block_orientation", "effector_translation",
                  "effector_target_translation", "target_translation", "target_orientation")

    def _build(self) -> None:
        self.block = self.scene.add_block(RED)
        self.target = self.scene.add_zone(GREEN)

    def _randomize(self) -> None:
        block_xy = np.array([0.4, -0.2]) + self._uniform([-0.1, -0.15], [0.1, 0.15])
        target_xy = np.array([0.4, 0.2]) + self._uniform([-0.1, -0.15], [0.1, 0.15])
        self.scene.place(self.block, block_xy, self._uniform(0, math.pi), z=0.02)
        self.scene.place(self.target, target_xy, math.pi + self._uniform(-math.pi / 6, math.pi / 6),
                         z=0.0005)

    def _start_episode(self) -> None:
        self._initial_distance = self.goal_distance()
        self._best_reward = 0.0

    def goal_distance(self) -> float:
        """Block-to-target distance in metres (xy)."""
        return float(np.linalg.norm(self.scene.pose_xy_yaw(self.block)[0]
                                    - self.scene.pose_xy_yaw(self.target)[0]))

    def _state_observation(self) -> dict[str, np.ndarray]:
        block_xy, block_yaw = self.scene.pose_xy_yaw(self.block)
        target_xy, target_yaw = self.scene.pose_xy_yaw(self.target)
        return {"block_translation": block_xy, "block_orientation": block_yaw,
                **self._effector_observation(),
                "target_translation": target_xy, "target_orientation": target_yaw}

    def _evaluate(self):
        distance = self.goal_distance()
        success = distance < self.goal_tolerance
        progress = 1.0 - distance / max(self._initial_distance, 1e-7)
        self._best_reward = max(self._best_reward, progress)
        reward = 1.0 if success else self._best_reward
        return reward, success, {"goal_distance": distance}
