"""The shortest-path follower: the demonstrator for every navigation goal type."""

from __future__ import annotations

import numpy as np

from worldsim.envs.navigation.env import STOP, IndoorNavEnv
from worldsim.envs.navigation.tasks import shortest_path


class ShortestPathOracle:
    """Follows the graph's shortest path to the goal nearest the start, then stops.

    ``noise_std`` is accepted for interface parity with the other oracles; with a value > 0
    the oracle takes a random valid move with that probability (clipped to [0, 1]) instead
    of the shortest-path one, re-planning from wherever it lands.
    """

    def __init__(self, env: IndoorNavEnv, noise_std: float = 0.0):
        self.env = env
        self.random_move_probability = float(np.clip(noise_std, 0.0, 1.0))

    def reset(self) -> None:
        pass

    def act(self, obs=None) -> int:
        env = self.env
        if env.goal_distance() == 0.0:
            return STOP
        neighbors = env.neighbors()
        if self.random_move_probability and env.np_random.random() < self.random_move_probability:
            return int(env.np_random.integers(len(neighbors))) + 1
        goal = min(env.episode.goals, key=lambda g: env.scene.distances[env.node][g])
        next_node = shortest_path(env.scene, env.node, goal)[1]
        return neighbors.index(next_node) + 1
