"""Gymnasium wrappers shared by the worldsim environments.

``OracleActionInInfo`` keeps a scripted oracle next to its env, so that demonstrations can be
collected inside ``gymnasium.vector.AsyncVectorEnv`` workers: the oracle's per-episode state
(phase, chosen order, ...) lives in the worker process with the env it reads.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from worldsim.envs.registry import make_oracle

ORACLE_ACTION_KEY = "oracle_action"
ORACLE_CLEAN_ACTION_KEY = "oracle_clean_action"


class OracleActionInInfo(gymnasium.Wrapper):
    """Puts the oracle's next action into ``info["oracle_action"]`` after every reset and step.

    With ``noise_std`` > 0 that action carries the noise, and ``info["oracle_clean_action"]``
    holds the oracle's noise-free action for the same state.

    The action is the one the oracle would take from the observation just returned, cast to
    the action space's dtype (shape ``action_space.shape``). Stepping with it reproduces a plain
    ``a = oracle.act(obs); env.step(a)`` loop exactly. After the last step of an episode the
    oracle is still asked once (the action is unused); ``reset`` resets the oracle.

    Args:
      env: a worldsim env made with ``gymnasium.make`` (its ``spec.id`` picks the oracle).
      noise_std: std of the oracle's Gaussian action noise, in action units.
      oracle_options: keyword options of the oracle's constructor (e.g. ``{"via_home": False}``
        for the BlockSort oracle).
    """

    def __init__(self, env: gymnasium.Env, noise_std: float = 0.0,
                 oracle_options: dict[str, Any] | None = None):
        super().__init__(env)
        self.noise_std = float(noise_std)
        self.oracle = make_oracle(env, noise_std=self.noise_std, **(oracle_options or {}))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.oracle.reset()
        return obs, self._with_oracle_action(obs, info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._with_oracle_action(obs, info)

    def _with_oracle_action(self, obs, info: dict[str, Any]) -> dict[str, Any]:
        action = np.asarray(self.oracle.act(obs), dtype=self.action_space.dtype)
        clean = getattr(self.oracle, "clean_action", None)
        if self.noise_std == 0 or clean is None:
            return {**info, ORACLE_ACTION_KEY: action}
        clean = np.asarray(clean, dtype=self.action_space.dtype)
        return {**info, ORACLE_ACTION_KEY: action, ORACLE_CLEAN_ACTION_KEY: clean}
