"""Training windows over recorded episodes, normalisation statistics and shuffled batches.

A window is T consecutive observations of one episode and the action taken at the last of
them (IBC's many-to-one pairs, reference/ibc.md §5). At an episode's start the first
observation is repeated to fill the window; a window never crosses into another episode.

    >>> batches = WindowedBatches(load_dataset("data/particle"), window=2, batch_size=512)
    >>> batch = next(iter(batches))
    >>> batch["observations"]["pos_agent"].shape, batch["actions"].shape   # (512, 2, 2), (512, 2)
    >>> batches.normalization.save(workdir / "normalization.json")
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from worldsim.data.dataset import Episode

_FORMAT = "worldsim.NormalizationStats/v1"


def is_image(array: np.ndarray, batch_dims: int = 1) -> bool:
    """True for uint8 arrays whose per-item shape (after ``batch_dims``) is (H, W) or (H, W, C)."""
    return array.dtype == np.uint8 and array.ndim - batch_dims in (2, 3)


def state_keys(observations: dict[str, np.ndarray], batch_dims: int = 1) -> list[str]:
    """The non-image keys of an observation dict, in its order."""
    return [k for k, v in observations.items() if not is_image(np.asarray(v), batch_dims)]


@dataclasses.dataclass
class NormalizationStats:
    """Per-key observation mean/std and per-dimension action min/max.

    obs_mean, obs_std: {key: per-step shape} float32, std floored at ``eps``; image keys have
    none. action_min, action_max: (A,) float32. Observations are z-scored; actions are min-max
    scaled to [-1, 1] (the range floored at ``eps``). Save with the run (``save``/``load``,
    JSON) so that evaluation normalises exactly as training did.
    """

    obs_mean: dict[str, np.ndarray]
    obs_std: dict[str, np.ndarray]
    action_min: np.ndarray
    action_max: np.ndarray
    eps: float = 1e-6

    @classmethod
    def from_episodes(cls, episodes: Iterable[Episode], obs_keys: Sequence[str] | None = None,
                      eps: float = 1e-6) -> NormalizationStats:
        """Statistics over every (observation, action) pair: observations 0..T-1 of each episode
        (the final observation has no action). ``obs_keys`` defaults to all state keys."""
        episodes = list(episodes)
        if not episodes:
            raise ValueError("cannot compute normalisation statistics of zero episodes")
        keys = list(obs_keys) if obs_keys is not None else list(episodes[0].observations)
        mean, std = {}, {}
        for key in keys:
            values = np.concatenate([ep.observations[key][:ep.num_steps] for ep in episodes])
            if is_image(values):
                continue
            values = values.astype(np.float64)
            mean[key] = values.mean(axis=0).astype(np.float32)
            std[key] = np.maximum(values.std(axis=0), eps).astype(np.float32)
        actions = np.concatenate([ep.actions for ep in episodes]).astype(np.float32)
        return cls(mean, std, actions.min(axis=0), actions.max(axis=0), float(eps))

    def normalize_observations(self, observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Z-scores the keys that have statistics (float32, any leading dims); others unchanged."""
        return {k: ((v - self.obs_mean[k]) / self.obs_std[k]).astype(np.float32)
                if k in self.obs_mean else v for k, v in observations.items()}

    def normalize_actions(self, actions: np.ndarray) -> np.ndarray:
        """(..., A) env actions → (..., A) float32 in [-1, 1] over the dataset's range."""
        scale = np.maximum(self.action_max - self.action_min, self.eps)
        return (2.0 * (actions - self.action_min) / scale - 1.0).astype(np.float32)

    def denormalize_actions(self, actions: np.ndarray) -> np.ndarray:
        """Inverse of ``normalize_actions``: (..., A) in [-1, 1] → env action units."""
        scale = np.maximum(self.action_max - self.action_min, self.eps)
        return ((actions + 1.0) / 2.0 * scale + self.action_min).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (float32 values are exact as JSON doubles)."""
        return {"format": _FORMAT, "eps": self.eps,
                "observations": {k: {"mean": self.obs_mean[k].tolist(),
                                     "std": self.obs_std[k].tolist()} for k in self.obs_mean},
                "actions": {"min": self.action_min.tolist(), "max": self.action_max.tolist()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NormalizationStats:
        if data.get("format") != _FORMAT:
            raise ValueError(f"not normalisation statistics (format {data.get('format')!r}, "
                             f"expected {_FORMAT!r})")
        obs, actions = data["observations"], data["actions"]
        as_f32 = lambda x: np.asarray(x, np.float32)  # noqa: E731
        return cls({k: as_f32(v["mean"]) for k, v in obs.items()},
                   {k: as_f32(v["std"]) for k, v in obs.items()},
                   as_f32(actions["min"]), as_f32(actions["max"]), float(data["eps"]))

    def save(self, path: str | os.PathLike) -> Path:
        """Writes JSON to ``path`` (via a temporary name, then rename). Returns the path."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> NormalizationStats:
        """Reads statistics written by ``save``; ValueError naming the file if unreadable."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"Cannot read normalisation statistics {path}: {err}") from err


def window_indices(num_steps: int, window: int, offset: int = 0) -> np.ndarray:
    """(num_steps, window) int64 indices of the observations of each window of one episode.

    Row t holds steps t-window+1 .. t, clipped at 0 (the first observation repeats), plus
    ``offset`` (the episode's first row in a concatenated array).
    """
    steps = np.arange(num_steps)[:, None] + np.arange(1 - window, 1)[None, :]
    return np.maximum(steps, 0) + offset


class WindowedBatches:
    """All windows of a set of episodes, and an epoch-based iterator of shuffled batches.

    Args:
      episodes: the episodes (a loaded ``EpisodeDataset`` or a sequence of ``Episode``).
      obs_keys: observation keys to use, in this order (default: all, in dataset order).
      window: T, observations per window (≥ 1; IBC uses 2).
      batch_size: B; each epoch yields ``num_windows // B`` full batches (remainder dropped).
      seed: shuffling seed; epoch e uses ``np.random.default_rng([seed, e])``.
      normalize: z-score state observations and min-max actions to [-1, 1] with
        ``self.normalization`` (image keys stay uint8 either way).
      normalization: statistics to use; default ``NormalizationStats.from_episodes``.

    Batches are ``{"observations": {key: (B, T, ...)}, "actions": (B, A)}``.
    """

    def __init__(self, episodes: Iterable[Episode], obs_keys: Sequence[str] | None = None,
                 window: int = 2, batch_size: int = 256, seed: int = 0, normalize: bool = True,
                 normalization: NormalizationStats | None = None):
        episodes = [ep for ep in episodes if ep.num_steps > 0]
        if not episodes:
            raise ValueError("no episodes with at least one step")
        if window < 1 or batch_size < 1:
            raise ValueError(f"window={window} and batch_size={batch_size} must be ≥ 1")
        available = list(episodes[0].observations)
        self.obs_keys = list(obs_keys) if obs_keys is not None else available
        missing = [k for k in self.obs_keys if k not in available]
        if missing:
            raise ValueError(f"observation keys {missing} are not in the dataset; "
                             f"it has {available}")
        self.window, self.batch_size, self.seed = window, batch_size, seed
        self.normalize = normalize
        # {key: (N, ...)}: every observation that has an action (the final one has none).
        self.observations = {
            k: np.concatenate([ep.observations[k][:ep.num_steps] for ep in episodes])
            for k in self.obs_keys}
        self.actions = np.concatenate([ep.actions for ep in episodes])  # (N, A)
        offsets = np.cumsum([0] + [ep.num_steps for ep in episodes])
        self.indices = np.concatenate([window_indices(ep.num_steps, window, int(o))
                                       for ep, o in zip(episodes, offsets)])  # (N, T)
        self.normalization = (normalization
                              or NormalizationStats.from_episodes(episodes, self.obs_keys))
        if self.num_windows < batch_size:
            raise ValueError(f"batch_size={batch_size} exceeds the {self.num_windows} windows")

    @property
    def num_windows(self) -> int:
        """N, one window per recorded action."""
        return len(self.actions)

    @property
    def batches_per_epoch(self) -> int:
        return self.num_windows // self.batch_size

    def gather(self, window_ids: np.ndarray) -> dict[str, Any]:
        """The batch of windows ``window_ids`` (B,), normalised if ``self.normalize``."""
        rows = self.indices[window_ids]  # (B, T)
        batch = {"observations": {k: v[rows] for k, v in self.observations.items()},
                 "actions": self.actions[window_ids]}
        if self.normalize:
            batch["observations"] = self.normalization.normalize_observations(batch["observations"])
            batch["actions"] = self.normalization.normalize_actions(batch["actions"])
        return batch

    def _order(self, epoch: int) -> np.ndarray:
        if getattr(self, "_cached_epoch", None) != epoch:
            self._cached_order = np.random.default_rng([self.seed, epoch]).permutation(
                self.num_windows)
            self._cached_epoch = epoch
        return self._cached_order

    def epoch(self, epoch: int) -> Iterator[dict[str, Any]]:
        """The ``batches_per_epoch`` shuffled batches of epoch ``epoch`` (deterministic)."""
        for b in range(self.batches_per_epoch):
            yield self.batch_at(epoch * self.batches_per_epoch + b)

    def batch_at(self, step: int) -> dict[str, Any]:
        """Batch ``step`` of the endless stream, computed directly (a resumed run continues
        with exactly the batches an uninterrupted one would have seen)."""
        epoch, index = divmod(step, self.batches_per_epoch)
        ids = self._order(epoch)[index * self.batch_size:(index + 1) * self.batch_size]
        return self.gather(ids)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Endless batches: epoch 0, then 1, 2, ..."""
        for e in itertools.count():
            yield from self.epoch(e)


def flat_observation(obs_window: dict[str, np.ndarray],
                     keys: Sequence[str] | None = None) -> np.ndarray:
    """Concatenates state keys of ``{key: (B, T, ...)}`` into (B, T*D) float32.

    Time-major: row b is [step 0: key_1, key_2, ..., step 1: key_1, ...]. ``keys`` defaults to
    the dict's state keys in order (image keys are skipped); pass the space's key order.
    """
    keys = list(keys) if keys is not None else state_keys(obs_window, batch_dims=2)
    parts = [np.asarray(obs_window[k]) for k in keys]
    batch, steps = parts[0].shape[:2]
    flat = np.concatenate([p.reshape(batch, steps, -1) for p in parts], axis=-1)
    return flat.reshape(batch, -1).astype(np.float32)
