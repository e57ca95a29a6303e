"""From an experiment config to a ``TrainTask`` for the shared loop, and back from a
checkpoint to a model: the one place that knows which agent builds which network."""

from __future__ import annotations

from typing import Any

import gymnasium
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

import worldsim.envs  # noqa: F401  (registers the ids)
from worldsim.agents.bc.models import make_bc_loss_fn, make_bc_model, make_bc_predict_fn
from worldsim.agents.ibc.agent import make_energy_model, make_loss_fn, make_predict_fn
from worldsim.agents.ibc.samplers import ActionBounds
from worldsim.agents.inputs import IMAGE_KEY, model_inputs
from worldsim.data import (IncompatibleDatasetError, WindowedBatches, check_compatible,
                           load_dataset, with_action_labels)
from worldsim.data.windows import NormalizationStats
from worldsim.train.loop import TrainTask

AGENTS = ("ibc", "mse", "mdn", "nav_scorer", "worldmodel", "vision")


def _check_agent(config: ml_collections.ConfigDict) -> None:
    if config.agent not in AGENTS:
        raise ValueError(f"agent={config.agent!r} is not one of {AGENTS}")
    if config.obs_mode not in ("state", "rgb"):
        raise ValueError(f"obs_mode={config.obs_mode!r} is not one of ('state', 'rgb')")


def make_env(config: ml_collections.ConfigDict, **kwargs) -> gymnasium.Env:
    env_kwargs = dict(config.env_kwargs)
    if config.obs_mode == "rgb":
        env_kwargs["obs_mode"] = "state+rgb"
    return gymnasium.make(config.env_id, **env_kwargs, **kwargs)


def _observation_keys(config, observation_space) -> tuple[list[str], bool]:
    """(state keys in space order, whether images are used); pixel runs see images only."""
    if config.obs_mode == "rgb":
        return [], True
    return [k for k in observation_space.spaces if k != IMAGE_KEY], False


def model_dims(config, meta: dict[str, Any]) -> dict[str, int]:
    window = config.data.window
    dims = {"obs": window * meta["state_dim"], "action": meta["action_dim"], "image_channels": 0}
    if config.obs_mode == "rgb":
        dims["image_channels"] = window * 3
        if meta.get("image_size"):
            dims["image_size"] = tuple(meta["image_size"])
    return dims


def build_model(config, meta: dict[str, Any], seed: int) -> nnx.Module:
    rngs = nnx.Rngs(seed)
    if config.agent == "ibc":
        return make_energy_model(config, model_dims(config, meta), rngs)
    return make_bc_model(config, model_dims(config, meta), rngs)


def action_bounds(config, meta: dict[str, Any]) -> ActionBounds:
    return ActionBounds(jnp.asarray(meta["bounds_low"]), jnp.asarray(meta["bounds_high"]))


def make_train_task(config: ml_collections.ConfigDict) -> TrainTask:
    """Loads the dataset, checks it against the env, builds batches, model and loss."""
    if config.get("agent") == "nav_scorer":
        from worldsim.agents.nav.training import make_train_task as make_scorer_task
        return make_scorer_task(config)
    if config.get("agent") == "worldmodel":
        from worldsim.worldmodel.training import make_train_task as make_world_model_task
        return make_world_model_task(config)
    if config.get("agent") == "vision":
        from worldsim.agents.vision.training import make_train_task as make_vision_task
        return make_vision_task(config)
    _check_agent(config)
    env = make_env(config)
    check_compatible(config.dataset, env)
    state_keys, use_images = _observation_keys(config, env.observation_space)
    dataset = load_dataset(config.dataset)
    if dataset.env_id != config.env_id:
        raise IncompatibleDatasetError(
            f"dataset {config.dataset} was recorded in {dataset.env_id}, but the config trains "
            f"for {config.env_id}; collect a dataset of {config.env_id} or fix config.dataset")
    episodes = list(dataset.episodes)[:config.max_episodes or None]
    episodes = with_action_labels(episodes, config.data.get("action_labels", "taken"))
    keys = state_keys + ([IMAGE_KEY] if use_images else [])
    batches = WindowedBatches(episodes, keys, config.data.window, config.data.batch_size,
                              seed=config.seed)
    norm = batches.normalization
    bounds = ActionBounds.from_normalization(norm.action_min, norm.action_max,
                                             env.action_space.low, env.action_space.high,
                                             config.data.action_buffer)
    meta = {"agent": config.agent, "env_id": config.env_id, "state_keys": state_keys,
            "use_images": use_images, "window": config.data.window,
            "state_dim": int(sum(np.prod(env.observation_space[k].shape) for k in state_keys)),
            "action_dim": int(env.action_space.shape[0]),
            "image_size": list(env.observation_space[IMAGE_KEY].shape[:2]) if use_images else None,
            "normalization": norm.to_dict(), "bounds_low": np.asarray(bounds.low).tolist(),
            "bounds_high": np.asarray(bounds.high).tolist(), "num_episodes": len(episodes)}
    env.close()
    model = build_model(config, meta, config.seed)
    loss_fn = make_loss_fn(config, bounds) if config.agent == "ibc" else make_bc_loss_fn(config)

    def batch_at(step: int) -> dict[str, Any]:
        batch = batches.batch_at(step)
        return {"inputs": model_inputs(batch["observations"], state_keys, use_images),
                "actions": batch["actions"]}

    return TrainTask(model=model, loss_fn=loss_fn, batch_at=batch_at, meta=meta)


def make_predict(config: ml_collections.ConfigDict, meta: dict[str, Any]):
    """A jit-compiled ``(model_state, inputs, key) -> normalised actions (B, A)``."""
    if config.agent == "ibc":
        return make_predict_fn(config, action_bounds(config, meta))
    return make_bc_predict_fn(config)


def normalization_of(meta: dict[str, Any]) -> NormalizationStats:
    return NormalizationStats.from_dict(meta["normalization"])
