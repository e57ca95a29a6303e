"""A trained agent as a policy: observation history, normalisation, jit-compiled inference.

    >>> policy = worldsim.agents.load("runs/blockpush_dfo")
    >>> obs, info = env.reset(seed=0); policy.reset()
    >>> action = policy.act(obs)
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from flax import nnx

from worldsim.agents.inputs import ObservationHistory, model_inputs
from worldsim.data.windows import NormalizationStats


class Policy:
    """Acts in one env (``act``) or a batch of envs (``act_batch``), in env action units.

    ``predict_fn(model, inputs, key) -> (B, A)`` returns normalised actions; the policy keeps
    the last T observations per env (a reset tiles the first one, as in training).
    """

    def __init__(self, model: nnx.Module, predict_fn: Callable, meta: dict[str, Any],
                 config: ml_collections.ConfigDict, action_low: np.ndarray,
                 action_high: np.ndarray, seed: int = 0) -> None:
        model.eval()
        self.model, self.meta, self.config = model, meta, config
        self.normalization = NormalizationStats.from_dict(meta["normalization"])
        self.state_keys, self.use_images = list(meta["state_keys"]), bool(meta["use_images"])
        self.action_low, self.action_high = np.asarray(action_low), np.asarray(action_high)
        graphdef, state = nnx.split(model)
        self._state = state
        self._predict = jax.jit(lambda s, inputs, key: predict_fn(nnx.merge(graphdef, s), inputs, key))
        self._key = jax.random.key(seed)
        self._calls = 0
        self.history = ObservationHistory(int(meta["window"]))
        self._pending_reset: np.ndarray | None = None

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Forget the history (of the envs in ``mask``, or of all) before a new episode."""
        if mask is None or self.history.frames is None:
            self.history = ObservationHistory(self.history.window)
            self._pending_reset = None
        else:
            self._pending_reset = np.asarray(mask, bool)

    def act_batch(self, observations: dict[str, np.ndarray]) -> np.ndarray:
        """{key: (B, ...)} observations → (B, A) float32 actions."""
        windows = self.history.push(observations)
        if self._pending_reset is not None:  # envs that started a new episode: tile its first obs
            self.history.reset(observations, self._pending_reset)
            self._pending_reset = None
            windows = self.history.frames
        inputs = model_inputs(windows, self.state_keys, self.use_images, self.normalization)
        key = jax.random.fold_in(self._key, self._calls)
        self._calls += 1
        normalized = np.asarray(self._predict(self._state, inputs, key))
        actions = self.normalization.denormalize_actions(normalized)
        return np.clip(actions, self.action_low, self.action_high).astype(np.float32)

    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """One env's observation dict → its (A,) action."""
        batched = {k: np.asarray(v)[None] for k, v in observation.items()}
        return self.act_batch(batched)[0]
