"""The simple navigators: the shortest-path oracle (it lives beside the env) and a random walker."""

from __future__ import annotations

from worldsim.envs.navigation.env import STOP, IndoorNavEnv
from worldsim.envs.navigation.oracle import ShortestPathOracle
from worldsim.envs.navigation.tasks import MAX_PATH_NODES, MIN_PATH_NODES


class RandomWalker:
    """Walks a random number of moves (as many as a reference path has: 3 to 6), each to a
    random neighbour it has not visited when there is one, then stops. Randomness comes from
    the env's ``np_random``, so an episode seed fixes the walk."""

    def reset(self, env: IndoorNavEnv) -> None:
        self.moves_left = int(env.np_random.integers(MIN_PATH_NODES - 1, MAX_PATH_NODES))

    def act(self, env: IndoorNavEnv, obs=None) -> int:
        if self.moves_left == 0:
            return STOP
        self.moves_left -= 1
        neighbors = env.neighbors()
        fresh = [i for i, n in enumerate(neighbors) if n not in env.path]
        options = fresh or list(range(len(neighbors)))
        return int(options[int(env.np_random.integers(len(options)))]) + 1


class OracleNavigator:
    """The shortest-path oracle behind the navigator interface (``reset(env)``, ``act(env)``)."""

    def reset(self, env: IndoorNavEnv) -> None:
        self.oracle = ShortestPathOracle(env)

    def act(self, env: IndoorNavEnv, obs=None) -> int:
        return self.oracle.act(obs)
