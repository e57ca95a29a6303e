"""Trajectory datasets: record them (Minari/HDF5 on disk), load them, window and batch them.

    >>> from worldsim.data import collect, load_dataset, WindowedBatches
    >>> path = collect("worldsim/Particle-v0", episodes=100, num_envs=4, out="data/particle")
    >>> dataset = load_dataset(path)  # EpisodeDataset of numpy episodes
    >>> batches = WindowedBatches(dataset, window=2, batch_size=256)
    >>> batch = next(iter(batches))  # {"observations": {k: (B, T, ...)}, "actions": (B, A)}

The flow is one way: env → ``collect`` → dataset on disk → ``load_dataset`` → windows/batches.
"""

from worldsim.data.collect import OBS_MODES, POLICIES, collect
from worldsim.data.dataset import (
    DatasetError,
    Episode,
    EpisodeDataset,
    IncompatibleDatasetError,
    check_compatible,
    is_dataset_dir,
    load_dataset,
    read_metadata,
    with_action_labels,
)
from worldsim.data.windows import NormalizationStats, WindowedBatches, flat_observation

__all__ = [
    "OBS_MODES", "POLICIES", "collect", "is_dataset_dir",
    "DatasetError", "Episode", "EpisodeDataset", "IncompatibleDatasetError", "check_compatible",
    "load_dataset", "read_metadata", "with_action_labels",
    "NormalizationStats", "WindowedBatches", "flat_observation",
]
