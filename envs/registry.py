"""The list of worldsim environment ids, their registration and their oracles."""

from __future__ import annotations

import difflib
import importlib
import inspect
from typing import Any

import gymnasium

# id -> (entry point, episode step limit, oracle class "module:Class").
_SPECS: dict[str, tuple[str, int, str]] = {
    "worldsim/BlockPush-v0": (
        "worldsim.envs.manipulation.block_push:BlockPushEnv", 100,
        "worldsim.envs.manipulation.oracles:OrientedPushOracle"),
    "worldsim/BlockInsert-v0": (
        "worldsim.envs.manipulation.block_insert:BlockInsertEnv", 120,
        "worldsim.envs.manipulation.block_insert:InsertOracle"),
    "worldsim/BlockPushMultiTarget-v0": (
        "worldsim.envs.manipulation.multi_target:BlockPushMultiTargetEnv", 200,
        "worldsim.envs.manipulation.oracles:MultiTargetOracle"),
    "worldsim/BlockPushMultimodal-v0": (
        "worldsim.envs.manipulation.multimodal:BlockPushMultimodalEnv", 200,
        "worldsim.envs.manipulation.oracles:MultimodalOracle"),
    "worldsim/BlockSort-v0": (
        "worldsim.envs.manipulation.block_sort:BlockSortEnv", 400,
        "worldsim.envs.manipulation.block_sort:SortOracle"),
    "worldsim/Particle-v0": (
        "worldsim.envs.particle:ParticleEnv", 50,
        "worldsim.envs.particle:ParticleOracle"),
    "worldsim/IndoorNav-v0": (
        "worldsim.envs.navigation.env:make_instruction_env", 20,
        "worldsim.envs.navigation.oracle:ShortestPathOracle"),
    "worldsim/ObjectNav-v0": (
        "worldsim.envs.navigation.env:make_object_env", 40,
        "worldsim.envs.navigation.oracle:ShortestPathOracle"),
    "worldsim/PointNav-v0": (
        "worldsim.envs.navigation.env:make_point_env", 30,
        "worldsim.envs.navigation.oracle:ShortestPathOracle"),
}

ENV_IDS: tuple[str, ...] = tuple(_SPECS)


def register_all() -> None:
    """Registers every worldsim id with Gymnasium (idempotent)."""
    for env_id, (entry_point, max_steps, _) in _SPECS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=entry_point, max_episode_steps=max_steps)


def check_env_id(env_id: str) -> str:
    """Returns ``env_id`` if it is a worldsim id, else raises a ValueError listing the known ids."""
    if env_id in _SPECS:
        return env_id
    close = difflib.get_close_matches(env_id, ENV_IDS, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"Unknown environment id {env_id!r}.{hint} Known ids: {', '.join(ENV_IDS)}.")


def _import(path: str) -> Any:
    module_name, attr = path.split(":")
    return getattr(importlib.import_module(module_name), attr)


def make_oracle(env: gymnasium.Env, noise_std: float = 0.0, **options: Any) -> Any:
    """The scripted demonstrator for ``env`` (a wrapped or bare worldsim env).

    The oracle has ``reset()`` (call after ``env.reset``) and ``act(obs) -> action``; it reads the
    unwrapped env for geometry and draws any random choice from the env's own ``np_random``.
    ``noise_std`` adds Gaussian noise (in action units) to every action; ``options`` go to the
    oracle's constructor (e.g. ``orient=True`` for the block pushers).
    """
    env_id = env.spec.id if env.spec is not None else None
    if env_id not in _SPECS:
        raise ValueError(f"No oracle for environment {env_id!r}; known ids: {', '.join(ENV_IDS)}.")
    check_oracle_options(env_id, options)
    return _import(_SPECS[env_id][2])(env.unwrapped, noise_std=noise_std, **options)


def check_oracle_options(env_id: str, options: dict[str, Any]) -> dict[str, Any]:
    """Returns ``options`` if every key is a constructor option of ``env_id``'s oracle (other
    than the env and ``noise_std``), else raises a ValueError naming the bad keys and the
    allowed ones."""
    oracle_class = _import(_SPECS[check_env_id(env_id)][2])
    parameters = list(inspect.signature(oracle_class).parameters)
    allowed = [name for name in parameters[1:] if name != "noise_std"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown oracle option(s) {unknown} for {env_id} "
                         f"({oracle_class.__name__}); allowed: {allowed or 'none'}")
    return options
