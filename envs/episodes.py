"""Seeded episodes over a vector env: the one rollout scheduler behind collection and evaluation.

Episode ``i`` is always reset with seed ``first_seed + i`` in whichever sub-env is free, so what
is recorded or measured does not depend on the number of sub-envs. The vector env must not
auto-reset (``autoreset_mode=AutoresetMode.DISABLED``); the scheduler resets sub-envs itself.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import gymnasium
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

Observation = dict[str, np.ndarray]


class EpisodeObserver(Protocol):
    """Receives what happens in each episode (``episode`` is the episode index)."""

    def on_reset(self, episode: int, seed: int, obs: Observation, info: dict[str, Any]) -> None: ...

    def on_step(self, episode: int, action: np.ndarray, obs: Observation, reward: float,
                terminated: bool, truncated: bool, info: dict[str, Any]) -> None: ...

    def on_end(self, episode: int) -> None: ...


def make_vector_env(make_env: Callable[[], gymnasium.Env], num_envs: int):
    """``num_envs`` copies of ``make_env()`` that never auto-reset (the scheduler resets them).

    One env runs in-process; more run in spawned worker processes (forking a process that
    already runs JAX threads can deadlock), so ``make_env`` must be picklable.
    """
    if num_envs == 1:
        return SyncVectorEnv([make_env], autoreset_mode=AutoresetMode.DISABLED)
    return AsyncVectorEnv([_RegisteringFactory(make_env)] * num_envs,
                          autoreset_mode=AutoresetMode.DISABLED, context="spawn")


class _RegisteringFactory:
    """Registers the worldsim ids in a freshly spawned worker, then calls ``make_env``."""

    def __init__(self, make_env: Callable[[], gymnasium.Env]) -> None:
        self.make_env = make_env

    def __call__(self) -> gymnasium.Env:
        import worldsim.envs  # noqa: F401

        return self.make_env()


def slot(batch: dict[str, np.ndarray], i: int) -> Observation:
    """Sub-env ``i``'s observation from a batched observation dict."""
    return {key: np.array(value[i]) for key, value in batch.items()}


def slot_info(info: dict[str, Any], i: int) -> dict[str, Any]:
    """Sub-env ``i``'s entries of a vector env's batched info dict (nested dicts, such as the
    navigation envs' final ``metrics``, are batched the same way one level down)."""
    return {k: slot_info(v, i) if isinstance(v, dict) else v[i]
            for k, v in info.items() if not k.startswith("_") and info[f"_{k}"][i]}


def run_seeded_episodes(envs, episodes: int, first_seed: int,
                        choose_actions: Callable[[Observation, list[dict], list[int | None],
                                                  np.ndarray], np.ndarray],
                        observer: EpisodeObserver) -> None:
    """Runs ``episodes`` episodes over the sub-envs of ``envs``.

    ``choose_actions(obs_batch, infos, episode_of, started) -> (num_envs, *action_shape)``:
    actions for every sub-env, given the batched observation, each sub-env's latest info dict,
    the episode index each sub-env is running (None for an idle one) and ``started`` (the
    sub-envs whose episode began at this observation, for policies that keep a history).
    Sub-envs without an episode left step on with those actions unrecorded.
    """
    n = envs.num_envs
    episode_of: list[int | None] = [None] * n
    next_episode = 0

    def assign(i: int) -> int | None:
        nonlocal next_episode
        episode_of[i] = None
        if next_episode >= episodes:
            return None
        episode_of[i], next_episode = next_episode, next_episode + 1
        return first_seed + episode_of[i]

    def started(mask: np.ndarray, obs, info) -> None:
        for i in np.flatnonzero(mask):
            infos[i] = slot_info(info, i)
            if episode_of[i] is not None:
                observer.on_reset(episode_of[i], first_seed + episode_of[i], slot(obs, i), infos[i])

    infos: list[dict[str, Any]] = [{} for _ in range(n)]
    seeds = [assign(i) for i in range(n)]
    obs, info = envs.reset(seed=seeds)
    new = np.ones(n, bool)
    started(new, obs, info)
    dtype = envs.single_action_space.dtype
    while any(e is not None for e in episode_of):
        actions = np.asarray(choose_actions(obs, infos, list(episode_of), new), dtype=dtype)
        obs, rewards, terminated, truncated, info = envs.step(actions)
        done = terminated | truncated
        for i, episode in enumerate(episode_of):
            infos[i] = slot_info(info, i)
            if episode is None:
                continue
            observer.on_step(episode, actions[i], slot(obs, i), float(rewards[i]),
                             bool(terminated[i]), bool(truncated[i]), infos[i])
            if done[i]:
                observer.on_end(episode)
        new = done.copy()
        seeds = [assign(i) if done[i] else None for i in range(n)]
        if done.any() and any(e is not None for e in episode_of):
            reset_obs, reset_info = envs.reset(seed=seeds, options={"reset_mask": done.copy()})
            obs = {k: np.where(_expand(done, v), reset_obs[k], v) for k, v in obs.items()}
            started(done, obs, reset_info)


def _expand(mask: np.ndarray, like: np.ndarray) -> np.ndarray:
    return mask.reshape(mask.shape + (1,) * (np.ndim(like) - 1))
