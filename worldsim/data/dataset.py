"""Load a dataset written by ``worldsim.data.collect`` into numpy, and check it against an env.

    >>> ds = load_dataset("data/particle")
    >>> ds.episodes[0].observations["pos_agent"].shape   # (T+1, 2)
    >>> check_compatible(ds, "worldsim/Particle-v0")

Every failure to read (missing path, not a dataset, truncated or corrupt file) raises
``DatasetError`` naming the offending path; the underlying h5py/minari error is chained as cause.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

DATA_SUBDIR = "data"  # the Minari data dir inside a dataset folder
METADATA_FILE = "metadata.json"  # Minari's metadata file name inside the data dir
HDF5_FILE = "main_data.hdf5"  # Minari's HDF5 file name inside the data dir
_READ_ERRORS = (OSError, KeyError, ValueError, TypeError, AssertionError, IndexError, RuntimeError)


class DatasetError(ValueError):
    """A dataset that cannot be read, or that does not fit what it is used with."""


class IncompatibleDatasetError(DatasetError):
    """The dataset's observation/action spaces do not match an environment's."""


@dataclasses.dataclass(frozen=True)
class Episode:
    """One recorded episode of T steps.

    observations: {key: (T+1, ...)} including the observation after the last step.
    actions: (T, A) actions, in the env's action units. rewards: (T,) float64.
    terminations, truncations: (T,) bool. is_success: (T+1,) bool, ``info["is_success"]``
    after the reset (index 0) and after every step. seed: the reset seed. index: position.
    infos: other per-step info entries the collector kept, {key: (T+1, ...)} (navigation:
    ``node``, ``action_mask``). metadata: per-episode entries, plain Python values
    (navigation: ``house_seed``, ``goals``, ``reference_path``, ``instructions``).
    """

    observations: dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    is_success: np.ndarray
    seed: int | None
    index: int
    infos: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def num_steps(self) -> int:
        """T, the number of actions taken."""
        return len(self.actions)

    @property
    def success(self) -> bool:
        """Whether ``info["is_success"]`` was true at any step (LeRobot's convention)."""
        return bool(np.any(self.is_success))


@dataclasses.dataclass
class EpisodeDataset:
    """All episodes of a dataset in memory, with its spaces and metadata.

    observation_space keeps the env's key order (Minari itself stores keys sorted).
    metadata is the parsed ``metadata.json``; ``metadata["worldsim"]`` holds the env id, env
    kwargs, policy, seed, noise and collection statistics.
    """

    path: Path
    episodes: list[Episode]
    observation_space: spaces.Dict
    action_space: spaces.Box
    env_id: str | None
    metadata: dict[str, Any]

    def __len__(self) -> int:
        return len(self.episodes)

    def __getitem__(self, index: int) -> Episode:
        return self.episodes[index]

    def __iter__(self) -> Iterator[Episode]:
        return iter(self.episodes)

    @property
    def num_steps(self) -> int:
        """Total number of actions over all episodes."""
        return sum(ep.num_steps for ep in self.episodes)

    @property
    def success_rate(self) -> float:
        """Fraction of episodes with ``Episode.success``."""
        return float(np.mean([ep.success for ep in self.episodes])) if self.episodes else 0.0


ACTION_LABELS = ("taken", "oracle_clean")


def with_action_labels(episodes: list[Episode], labels: str) -> list[Episode]:
    """The episodes with the action labels a policy should learn.

    ``labels``: "taken", the recorded actions as executed; or "oracle_clean", the oracle's
    noise-free action at each observation (``infos["oracle_clean_action"]``, kept by ``collect``
    with ``noise_std`` > 0): DART-style labels for noise-injected demonstrations.
    """
    if labels not in ACTION_LABELS:
        raise ValueError(f"action labels {labels!r} are not one of {ACTION_LABELS}")
    if labels == "taken":
        return episodes
    missing = [ep.index for ep in episodes if "oracle_clean_action" not in ep.infos]
    if missing:
        raise DatasetError(
            f"action labels 'oracle_clean' need infos/oracle_clean_action, which {len(missing)} "
            f"episodes lack (first: episode {missing[0]}); only oracle demonstrations collected "
            f"with noise_std > 0 (`worldsim collect --noise-std X`) record them")
    return [dataclasses.replace(ep, actions=ep.infos["oracle_clean_action"][:-1].astype(ep.actions.dtype))
            for ep in episodes]


def is_dataset_dir(path: str | os.PathLike) -> bool:
    """True if ``path`` is a dataset folder written by ``collect`` (holds data/metadata.json)."""
    return (Path(path) / DATA_SUBDIR / METADATA_FILE).is_file()


def minari_data_dir(path: str | os.PathLike) -> Path:
    """The Minari data dir of a dataset: ``path/data``, or ``path`` itself if it is one.

    Raises DatasetError when ``path`` is missing or holds no dataset.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"No dataset at {path}: the path does not exist.")
    for candidate in (path / DATA_SUBDIR, path):
        if (candidate / METADATA_FILE).is_file():
            return candidate
    expected = path / DATA_SUBDIR / METADATA_FILE
    raise DatasetError(f"{path} is not a worldsim dataset: expected {expected} "
                       f"(datasets are written by `worldsim collect`).")


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``metadata.json`` of the dataset at ``path`` (cheap: reads no episodes)."""
    file = minari_data_dir(path) / METADATA_FILE
    try:
        with open(file) as f:
            metadata = json.load(f, object_pairs_hook=OrderedDict)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"Cannot read dataset metadata {file}: {err}") from err
    if not isinstance(metadata, dict) or "observation_space" not in metadata:
        raise DatasetError(f"{file} is not Minari dataset metadata (no 'observation_space').")
    return dict(metadata)


def dataset_spaces(metadata: dict[str, Any]) -> tuple[spaces.Space, spaces.Space]:
    """(observation_space, action_space) from metadata, observation keys in the env's order."""
    from minari.serialization import deserialize_space

    obs_space = deserialize_space(metadata["observation_space"])
    act_space = deserialize_space(metadata["action_space"])
    order = metadata.get("worldsim", {}).get("observation_keys")
    if isinstance(obs_space, spaces.Dict) and order and set(order) == set(obs_space.spaces):
        obs_space = spaces.Dict(OrderedDict((k, obs_space.spaces[k]) for k in order))
    return obs_space, act_space


def load_dataset(path: str | os.PathLike) -> EpisodeDataset:
    """Reads every episode of the dataset folder ``path`` (or its ``data/`` dir) into numpy.

    Raises DatasetError naming the file for a missing path, a folder that is not a dataset, or
    a truncated/corrupt ``metadata.json`` or ``main_data.hdf5``.
    """
    data_dir = minari_data_dir(path)
    metadata = read_metadata(data_dir)
    try:
        obs_space, act_space = dataset_spaces(metadata)
    except _READ_ERRORS + (json.JSONDecodeError,) as err:
        raise DatasetError(f"Corrupt spaces in {data_dir / METADATA_FILE}: {err}") from err
    episodes = _read_episodes(data_dir, obs_space)
    env_id = metadata.get("worldsim", {}).get("env_id")
    if env_id is None and metadata.get("env_spec"):
        env_id = json.loads(metadata["env_spec"]).get("id")
    return EpisodeDataset(Path(path), episodes, obs_space, act_space, env_id, metadata)


def _read_episodes(data_dir: Path, obs_space: spaces.Space) -> list[Episode]:
    import minari

    hdf5 = data_dir / HDF5_FILE
    try:
        dataset = minari.MinariDataset(data_dir)
        indices = dataset.episode_indices
        metadata = list(dataset.storage.get_episode_metadata(indices))
        episodes = [_to_episode(ep, meta, obs_space)
                    for ep, meta in zip(dataset.iterate_episodes(), metadata)]
    except _READ_ERRORS as err:
        raise DatasetError(f"Cannot read dataset file {hdf5}: {type(err).__name__}: {err}. "
                           f"The file is truncated or corrupt; collect it again.") from err
    if len(episodes) != len(indices):
        raise DatasetError(f"{hdf5} holds {len(episodes)} episodes; "
                           f"its metadata says {len(indices)}.")
    return episodes


_MINARI_EPISODE_ATTRIBUTES = ("id", "seed", "total_steps")


def _plain(value: Any) -> Any:
    """An HDF5 attribute value as plain Python (arrays become lists, bytes become str)."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value.item() if isinstance(value, np.generic) else value


def _to_episode(ep, metadata: dict[str, Any], obs_space: spaces.Space) -> Episode:
    keys = list(obs_space.spaces) if isinstance(obs_space, spaces.Dict) else list(ep.observations)
    infos = dict(ep.infos or {})
    num_steps = len(ep.actions)
    success = np.asarray(infos.pop("is_success", np.zeros(num_steps + 1)), bool)
    seed = metadata.get("seed")
    return Episode(
        observations={k: np.asarray(ep.observations[k]) for k in keys},
        actions=np.asarray(ep.actions), rewards=np.asarray(ep.rewards),
        terminations=np.asarray(ep.terminations, bool),
        truncations=np.asarray(ep.truncations, bool),
        is_success=success, seed=None if seed is None else int(seed), index=int(ep.id),
        infos={k: np.asarray(v) for k, v in infos.items()},
        metadata={k: _plain(v) for k, v in metadata.items() if k not in _MINARI_EPISODE_ATTRIBUTES})


def _spaces_of(target, env_kwargs: dict[str, Any] | None) -> tuple[str, spaces.Space, spaces.Space]:
    """(description, observation_space, action_space) of an env id, env, or space pair."""
    if isinstance(target, str):
        import worldsim.envs  # noqa: F401  (registers the ids)

        env = gymnasium.make(target, **(env_kwargs or {}))
        try:
            return target, env.observation_space, env.action_space
        finally:
            env.close()
    if isinstance(target, gymnasium.Env):
        name = target.spec.id if target.spec is not None else type(target.unwrapped).__name__
        return name, target.observation_space, target.action_space
    obs_space, act_space = target
    return "the given spaces", obs_space, act_space


def check_compatible(dataset: EpisodeDataset | str | os.PathLike,
                     target: str | gymnasium.Env | tuple[spaces.Space, spaces.Space],
                     env_kwargs: dict[str, Any] | None = None) -> None:
    """Raises IncompatibleDatasetError listing every observation key/shape/dtype and action
    shape/dtype/bound that differs between ``dataset`` and ``target``.

    Args:
      dataset: a loaded dataset or a dataset path (only its metadata is read).
      target: an env id (made with ``env_kwargs``, then closed), an env, or
        ``(observation_space, action_space)``.
    """
    if isinstance(dataset, EpisodeDataset):
        name, data_obs, data_act = dataset.path, dataset.observation_space, dataset.action_space
    else:
        name = Path(dataset)
        data_obs, data_act = dataset_spaces(read_metadata(dataset))
    target_name, env_obs, env_act = _spaces_of(target, env_kwargs)
    problems = _observation_mismatches(data_obs, env_obs) + _action_mismatches(data_act, env_act)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise IncompatibleDatasetError(
            f"Dataset {name} does not match {target_name} (dataset vs env):\n{lines}")


def _as_dict(space: spaces.Space) -> dict[str, spaces.Space]:
    return dict(space.spaces) if isinstance(space, spaces.Dict) else {"<observation>": space}


def _observation_mismatches(data: spaces.Space, env: spaces.Space) -> list[str]:
    data, env = _as_dict(data), _as_dict(env)
    problems = [f"observation key {k!r}: in the dataset, missing from the env"
                for k in data if k not in env]
    problems += [f"observation key {k!r}: in the env, missing from the dataset"
                 for k in env if k not in data]
    for key in (k for k in data if k in env):
        problems += [f"observation {key!r}: {p}" for p in _box_mismatches(data[key], env[key])]
    return problems


def _action_mismatches(data: spaces.Space, env: spaces.Space) -> list[str]:
    problems = [f"action: {p}" for p in _box_mismatches(data, env)]
    if not problems and isinstance(data, spaces.Box) and isinstance(env, spaces.Box):
        if not (np.allclose(data.low, env.low) and np.allclose(data.high, env.high)):
            problems.append(f"action: bounds [{data.low}, {data.high}] vs [{env.low}, {env.high}]")
    return problems


def _box_mismatches(data: spaces.Space, env: spaces.Space) -> list[str]:
    if type(data) is not type(env):
        return [f"space type {type(data).__name__} vs {type(env).__name__}"]
    problems = []
    if data.shape != env.shape:
        problems.append(f"shape {data.shape} vs {env.shape}")
    if data.dtype != env.dtype:
        problems.append(f"dtype {data.dtype} vs {env.dtype}")
    return problems
