"""Record oracle or random rollouts of a worldsim env as a Minari dataset on disk.

    >>> from worldsim.data import collect
    >>> collect("worldsim/Particle-v0", episodes=100, num_envs=4, out="data/particle")

Episode ``i`` is always reset with seed ``seed + i``, so the dataset does not depend on
``num_envs``. On-disk layout (``out`` = ``data/particle``)::

    data/particle/             the dataset folder (named by ``out``)
      data/                    a Minari data dir: ``minari.MinariDataset("data/particle/data")``
        metadata.json          Minari metadata; the "worldsim" entry holds env id, env kwargs,
                               policy, seed, noise, observation key order and collection stats
        main_data.hdf5         episode_<i>/{observations/<key> (T+1, ...), actions (T, A),
                               rewards, terminations, truncations (T,), infos/is_success (T+1,)}

Navigation envs (``worldsim/IndoorNav-v0`` and co.) record the same way, with an integer action
(T,) and the instruction stored as a string per step. From their info dicts, ``STEP_INFO_KEYS``
are also kept per step (``infos/node``, ``infos/action_mask``) and ``EPISODE_INFO_KEYS`` of the
reset info (house seed, goals, reference path, instructions) become attributes of the
``episode_<i>`` group (``Episode.metadata`` after ``load_dataset``).

Oracle demonstrations with ``noise_std`` > 0 execute (and store as ``actions``) the noisy
action, and keep the oracle's noise-free action for each observation in
``infos/oracle_clean_action`` (T+1, A): the labels of DART-style noise injection, which show
a cloned policy how the oracle recovers from the states its own errors lead to. Train on them
with ``config.data.action_labels = "oracle_clean"``.

The dataset is written under a hidden temporary sibling (``.particle.tmp-...``) and renamed
into place when complete; on any failure the temporary folder is removed.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import gymnasium
import h5py
import minari
import numpy as np
from gymnasium.envs.registration import load_env_creator
from minari.data_collector.episode_buffer import EpisodeBuffer
from minari.dataset.minari_storage import MinariStorage
from tqdm import tqdm

import worldsim
from worldsim.data.dataset import DATA_SUBDIR, METADATA_FILE, is_dataset_dir
from worldsim.envs.episodes import make_vector_env, run_seeded_episodes
from worldsim.envs.registry import check_env_id, check_oracle_options
from worldsim.envs.wrappers import ORACLE_ACTION_KEY, ORACLE_CLEAN_ACTION_KEY, OracleActionInInfo

POLICIES = ("oracle", "random")
OBS_MODES = ("state", "rgb", "state+rgb")
# Info entries recorded when an env provides them (the navigation envs do): per step, and
# once per episode from the reset info.
STEP_INFO_KEYS = ("node", "action_mask", ORACLE_CLEAN_ACTION_KEY)
EPISODE_INFO_KEYS = ("house_seed", "goals", "reference_path", "instructions")


def env_takes_obs_mode(env_id: str) -> bool:
    """Whether the env's constructor has an ``obs_mode`` parameter.

    The block and particle envs do ("state", "rgb", "state+rgb"); the navigation envs do not
    (their observation is always the panorama dict), so ``collect`` passes none to them.
    """
    creator = load_env_creator(gymnasium.spec(env_id).entry_point)
    return "obs_mode" in inspect.signature(creator).parameters


def collect(env_id: str, *, episodes: int, out: str | os.PathLike, policy: str = "oracle",
            num_envs: int = 1, overwrite: bool = False, obs_mode: str | None = None, seed: int = 0,
            noise_std: float = 0.0, env_kwargs: dict[str, Any] | None = None,
            oracle_options: dict[str, Any] | None = None, progress: bool = True,
            jpeg_images: bool = True) -> Path:
    """Rolls out ``policy`` for ``episodes`` episodes and writes them as a dataset at ``out``.

    Args:
      env_id: a registered worldsim id, e.g. "worldsim/BlockPush-v0".
      episodes: number of episodes (≥ 1); every episode is kept, failures included.
      out: dataset folder to create (see the module docstring for its layout).
      policy: "oracle" (the env's scripted demonstrator) or "random" (uniform actions; for
        envs whose info has an ``action_mask``, uniform over the valid actions, STOP included).
      num_envs: parallel envs; > 1 uses ``AsyncVectorEnv`` worker processes.
      overwrite: replace an existing dataset at ``out`` (only ever a worldsim dataset).
      obs_mode: "state", "rgb" or "state+rgb", passed to the env as a kwarg; None means
        "state" (or ``env_kwargs["obs_mode"]``). Only for envs that take it
        (``env_takes_obs_mode``); giving one to any other env is a ValueError.
      seed: episode ``i`` is reset with seed ``seed + i``; random actions use the same seed.
      noise_std: Gaussian noise on oracle actions, in action units; the noise-free actions
        are kept too (module docstring).
      env_kwargs: extra keyword arguments for ``gymnasium.make``.
      oracle_options: keyword options of the env's oracle (``policy="oracle"`` only), e.g.
        ``{"via_home": False}`` for BlockSort; unknown keys are a ValueError naming the allowed.
      progress: show a progress bar with the running success rate.
      jpeg_images: store image observations JPEG-encoded (Minari's default, lossy, ~10x
        smaller); False stores raw uint8 arrays.

    Returns:
      ``Path(out)``. Raises ValueError for bad arguments and FileExistsError when ``out``
      exists and ``overwrite`` is False.
    """
    env_id = check_env_id(env_id)
    kwargs = _env_kwargs(env_id, obs_mode, env_kwargs)
    _check_arguments(policy, episodes, num_envs, noise_std)
    oracle_options = _oracle_options(env_id, policy, oracle_options)
    out = Path(out)
    _check_destination(out, overwrite)
    started = time.perf_counter()
    envs = _make_vector_env(env_id, kwargs, policy, noise_std, oracle_options, num_envs)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        registered = gymnasium.spec(env_id)
        spec = dataclasses.replace(registered, kwargs={**registered.kwargs, **kwargs})
        writer = _OrderedEpisodeWriter(tmp.absolute() / DATA_SUBDIR, envs, spec, jpeg_images)
        stats = _rollout(envs, policy, seed, episodes, writer.add, progress, env_id)
        writer.finish(_dataset_metadata(out, env_id, kwargs, policy, seed, noise_std,
                                        oracle_options, num_envs, envs, stats,
                                        time.perf_counter() - started))
        _move_into_place(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        envs.close()
    return out


def _env_kwargs(env_id: str, obs_mode: str | None, env_kwargs) -> dict[str, Any]:
    """The kwargs for ``gymnasium.make``: ``env_kwargs`` plus the checked ``obs_mode`` for
    envs that take one (default "state")."""
    kwargs = dict(env_kwargs or {})
    if not env_takes_obs_mode(env_id):
        if obs_mode is not None or "obs_mode" in kwargs:
            raise ValueError(f"{env_id} has no observation modes (obs_mode is only for the block "
                             f"and particle envs); leave out obs_mode / --obs-mode.")
        return kwargs
    if obs_mode is not None and kwargs.get("obs_mode", obs_mode) != obs_mode:
        raise ValueError(f"env_kwargs['obs_mode']={kwargs['obs_mode']!r} conflicts with "
                         f"obs_mode={obs_mode!r}; pass it once.")
    obs_mode = kwargs.get("obs_mode", obs_mode or "state")
    if obs_mode not in OBS_MODES:
        raise ValueError(f"obs_mode={obs_mode!r} is not one of {OBS_MODES}")
    return {**kwargs, "obs_mode": obs_mode}


def _check_arguments(policy, episodes, num_envs, noise_std) -> None:
    if policy not in POLICIES:
        raise ValueError(f"policy={policy!r} is not one of {POLICIES}")
    for name, value in (("episodes", episodes), ("num_envs", num_envs)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}={value!r} must be an integer ≥ 1")
    if not (noise_std >= 0 and np.isfinite(noise_std)):
        raise ValueError(f"noise_std={noise_std!r} must be a finite number ≥ 0")


def _oracle_options(env_id: str, policy: str, options) -> dict[str, Any]:
    options = dict(options or {})
    if options and policy != "oracle":
        raise ValueError(f"oracle_options={options!r} need policy='oracle', not {policy!r}")
    return check_oracle_options(env_id, options)


def _check_destination(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not overwrite:
        raise FileExistsError(f"{out} already exists; pass overwrite=True (--overwrite on the "
                              f"command line) to replace it.")
    empty_dir = out.is_dir() and not any(out.iterdir())
    if not (empty_dir or is_dataset_dir(out)):
        marker = out / DATA_SUBDIR / METADATA_FILE
        raise FileExistsError(
            f"{out} exists and is not a worldsim dataset (no {marker}); refusing to replace it "
            f"even with --overwrite. Choose another output path.")


def _move_into_place(tmp: Path, out: Path, overwrite: bool) -> None:
    """Renames the finished ``tmp`` folder to ``out``; an old ``out`` is removed only after."""
    if not out.exists():
        os.replace(tmp, out)
        return
    _check_destination(out, overwrite)  # it may have appeared while collecting
    trash = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(out, trash)
    os.replace(tmp, out)
    shutil.rmtree(trash, ignore_errors=True)


def _make_env(env_id: str, env_kwargs: dict[str, Any], policy: str, noise_std: float,
              oracle_options: dict[str, Any]):
    import worldsim.envs  # noqa: F401  (registers the ids inside spawned workers)

    env = gymnasium.make(env_id, **env_kwargs)
    return OracleActionInInfo(env, noise_std, oracle_options) if policy == "oracle" else env


def _make_vector_env(env_id, env_kwargs, policy, noise_std, oracle_options, num_envs):
    return make_vector_env(functools.partial(_make_env, env_id, env_kwargs, policy, noise_std,
                                             oracle_options), num_envs)


class _EpisodeRecorder:
    """Accumulates one episode of one sub-env: T+1 observations, T actions, ...

    ``episode_info`` holds the ``EPISODE_INFO_KEYS`` of the reset info that the env provides.
    """

    def __init__(self, index: int, seed: int, action_space: gymnasium.spaces.Space,
                 reset_info: dict[str, Any] | None = None):
        self.index, self.seed = index, seed
        self.random_actions = copy.deepcopy(action_space)
        self.random_actions.seed(seed)
        self.observations: list[dict[str, np.ndarray]] = []
        self.actions, self.rewards, self.terminations, self.truncations = [], [], [], []
        self.successes: list[bool] = []
        self.step_infos: list[dict[str, Any]] = []
        reset_info = reset_info or {}
        self.episode_info = {k: reset_info[k] for k in EPISODE_INFO_KEYS if k in reset_info}

    def random_action(self, action_mask=None):
        """A uniform random action; only among the valid ones when an ``action_mask`` is given."""
        if action_mask is None:
            return self.random_actions.sample()
        return self.random_actions.sample(mask=np.asarray(action_mask, np.int8))

    def add_reset(self, obs: dict[str, np.ndarray], success: bool,
                  info: dict[str, Any] | None = None) -> None:
        """Records an observation, its ``info["is_success"]`` and the ``STEP_INFO_KEYS`` of
        ``info`` (also used by add_step)."""
        self.observations.append(obs)
        self.successes.append(success)
        self.step_infos.append({k: info[k] for k in STEP_INFO_KEYS if k in (info or {})})

    def add_step(self, action, obs, reward, terminated, truncated, success, info=None) -> None:
        self.add_reset(obs, success, info)
        self.actions.append(action)
        self.rewards.append(reward)
        self.terminations.append(terminated)
        self.truncations.append(truncated)

    def to_buffer(self) -> EpisodeBuffer:
        keys = self.observations[0].keys()
        infos = {"is_success": np.asarray(self.successes, bool)}
        for key in set.intersection(*(set(i) for i in self.step_infos)):
            infos[key] = np.stack([np.asarray(i[key]) for i in self.step_infos])
        return EpisodeBuffer(
            id=self.index, seed=self.seed,
            observations={k: _stack_observations([o[k] for o in self.observations]) for k in keys},
            actions=np.stack(self.actions), rewards=np.asarray(self.rewards, np.float64),
            terminations=np.asarray(self.terminations, bool),
            truncations=np.asarray(self.truncations, bool),
            infos=infos)


def _stack_observations(values: list) -> np.ndarray | list[str]:
    """(T+1, ...) array of one observation key; a list of str for Text observations (what
    Minari's HDF5 writer stores as strings)."""
    if all(np.asarray(v).dtype.kind == "U" for v in values):
        return [str(v) for v in values]
    return np.stack(values)


def _episode_attributes(episode_info: dict[str, Any]) -> dict[str, Any]:
    """``episode_info`` as HDF5 attribute values (sequences of str as variable-length str)."""
    attributes = {}
    for key, value in episode_info.items():
        if isinstance(value, (tuple, list)) and value and all(isinstance(v, str) for v in value):
            value = np.array(value, dtype=h5py.string_dtype())
        elif isinstance(value, (tuple, list)):
            value = np.asarray(value, np.int64 if all(
                isinstance(v, (int, np.integer)) for v in value) else None)
        attributes[key] = value
    return attributes


@dataclasses.dataclass
class _RolloutStats:
    episodes: int = 0
    successes: int = 0
    steps: int = 0


def _is_success(info: dict[str, Any]) -> bool:
    """``info["is_success"]``; for the navigation envs, which report none, the success rate
    of their final ``info["metrics"]``."""
    if "is_success" in info:
        return bool(info["is_success"])
    return bool(info.get("metrics", {}).get("sr", 0.0) > 0)


class _Recorders:
    """An ``EpisodeObserver`` that records each episode and hands it on when it ends."""

    def __init__(self, action_space, on_episode, bar) -> None:
        self.action_space, self.on_episode, self.bar = action_space, on_episode, bar
        self.open: dict[int, _EpisodeRecorder] = {}
        self.stats = _RolloutStats()

    def on_reset(self, episode, seed, obs, info):
        self.open[episode] = _EpisodeRecorder(episode, seed, self.action_space, info)
        self.open[episode].add_reset(obs, _is_success(info), info)

    def on_step(self, episode, action, obs, reward, terminated, truncated, info):
        self.open[episode].add_step(action, obs, reward, terminated, truncated,
                                    _is_success(info), info)

    def on_end(self, episode):
        rec = self.open.pop(episode)
        self.stats.episodes += 1
        self.stats.successes += int(any(rec.successes))
        self.stats.steps += len(rec.actions)
        self.on_episode(rec.to_buffer(), rec.episode_info)
        self.bar.set_postfix(success=f"{self.stats.successes / self.stats.episodes:.0%}",
                             refresh=False)
        self.bar.update(1)


def _rollout(envs, policy: str, first_seed: int, episodes: int, on_episode, progress: bool,
             env_id: str) -> _RolloutStats:
    """Runs ``episodes`` seeded episodes over the sub-envs; ``on_episode(buffer)`` as each ends.

    Idle sub-envs (no episode left) step with a mid-range action (the first one of a
    discrete space: STOP for navigation), unrecorded.
    """
    space = envs.single_action_space
    if isinstance(space, gymnasium.spaces.Discrete):
        neutral = np.asarray(space.start, space.dtype)
    else:
        neutral = np.nan_to_num((space.low + space.high) / 2, posinf=0.0, neginf=0.0).astype(
            space.dtype)

    def choose_actions(obs, infos, episode_of, started):
        actions = []
        for i, episode in enumerate(episode_of):
            if episode is None:
                actions.append(neutral)
            elif policy == "random":
                actions.append(recorders.open[episode].random_action(infos[i].get("action_mask")))
            elif ORACLE_ACTION_KEY in infos[i]:
                actions.append(np.asarray(infos[i][ORACLE_ACTION_KEY]))
            else:
                raise RuntimeError(f"sub-env {i} returned no info[{ORACLE_ACTION_KEY!r}]")
        return np.stack(actions)

    with tqdm(total=episodes, desc=f"collect {env_id}", unit="ep", disable=not progress) as bar:
        recorders = _Recorders(space, on_episode, bar)
        run_seeded_episodes(envs, episodes, first_seed, choose_actions, recorders)
    return recorders.stats


class _OrderedEpisodeWriter:
    """Writes finished episodes to a new Minari HDF5 storage in episode order."""

    def __init__(self, data_path: Path, envs, spec, jpeg_images: bool):
        data_path.parent.mkdir(parents=True)
        self.storage = MinariStorage.new(
            data_path, observation_space=envs.single_observation_space,
            action_space=envs.single_action_space, env_spec=spec, data_format="hdf5",
            jpeg_encoding=jpeg_images)
        self.pending: dict[int, tuple[EpisodeBuffer, dict[str, Any]]] = {}
        self.next_index = 0

    def add(self, buffer: EpisodeBuffer, episode_info: dict[str, Any] | None = None) -> None:
        """Queues an episode; ``episode_info`` becomes attributes of its HDF5 group."""
        self.pending[buffer.id] = (buffer, episode_info or {})
        ready = []
        while self.next_index in self.pending:
            ready.append(self.pending.pop(self.next_index))
            self.next_index += 1
        if ready:
            self.storage.update_episodes([buffer for buffer, _ in ready])
            if any(info for _, info in ready):
                self.storage.update_episode_metadata(
                    [_episode_attributes(info) for _, info in ready],
                    [buffer.id for buffer, _ in ready])

    def finish(self, metadata: dict[str, Any]) -> None:
        if self.pending:
            raise RuntimeError(f"episodes {sorted(self.pending)} were never written")
        self.storage.update_metadata(metadata)


def _dataset_metadata(out: Path, env_id, env_kwargs, policy, seed, noise_std, oracle_options,
                      num_envs, envs, stats: _RolloutStats, seconds: float) -> dict[str, Any]:
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in out.name) or "dataset"
    return {
        "dataset_id": f"{name}-v0",  # Minari needs a versioned id; loading goes by path
        "minari_version": minari.__version__,
        "algorithm_name": f"worldsim {policy} policy",
        "description": f"{stats.episodes} {policy} episodes of {env_id} recorded by worldsim.",
        "worldsim": {
            "env_id": env_id,
            "env_kwargs": json.loads(json.dumps(env_kwargs, default=repr)),
            "policy": policy, "seed": seed, "episode_seeds": f"{seed} + episode index",
            "noise_std": float(noise_std), "oracle_options": dict(oracle_options),
            "obs_mode": env_kwargs.get("obs_mode"),
            "observation_keys": list(envs.single_observation_space.spaces),
            "num_episodes": stats.episodes, "num_successes": stats.successes,
            "success_rate": stats.successes / max(stats.episodes, 1),
            "total_steps": stats.steps, "num_envs": num_envs,
            "collect_seconds": round(seconds, 3), "worldsim_version": worldsim.__version__,
        },
    }
