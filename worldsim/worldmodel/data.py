"""Training examples for the world model: guidance re-projected from earlier frames of a walk.

A ``Trajectory`` is a walk through a house: per viewpoint an RGB, semantic and depth panorama
and the camera position. It comes from a recorded navigation episode
(``trajectories_from_dataset``) or is rendered straight from the procedural houses
(``scene_trajectories``, no dataset needed).

An example (trajectory i, target frame t, gap g): the context frames t−g−c+1 … t−g (c =
``context_frames``, clipped at 0; the last real observation is g steps before the target) go
into a ``PointCloudMemory`` as "observed", and the memory is re-projected at frame t's position
into the guidance (rgb, semantic, depth, mask). The target is frame t itself. Gaps 1 …
``max_gap`` teach the model to complete guidance of increasing sparsity, as seen k steps ahead
in evaluation.

``GuidanceBatches.batch_at(step)`` is deterministic (examples and augmentation drawn from
``(seed, step)``), so a resumed run sees the data an uninterrupted one would. Augmentation: the
whole stack (guidance and target) is rolled by a random number of columns — a rotation of the
world about the camera, valid for 360° panoramas. Guidance is computed on first use and cached
in memory (uint8 / float16: ~56 KB per example at 64×128).

Batch arrays (B = batch size, H×W = panorama size): ``guidance_rgb`` (B, H, W, 3) uint8,
``guidance_semantic`` (B, H, W) uint8, ``guidance_depth`` (B, H, W) float32 metres (0 =
unseen), ``guidance_mask`` (B, H, W) bool, ``target_rgb``, ``target_semantic``,
``target_depth`` likewise (target depth 0 = the ray hit nothing).
"""

from __future__ import annotations

import dataclasses
import os

import networkx as nx
import numpy as np

from worldsim.worldmodel.memory import PointCloudMemory

DEFAULT_VOXEL_SIZE = 0.01
MAX_RANGE = 10.0
DEFAULT_OCCLUSION_WINDOW = 0  # off: see reproject.occlusion_filter
DEFAULT_OCCLUSION_TOLERANCE = 0.1


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """T viewpoints of one walk: rgb (T, H, W, 3) uint8, semantic (T, H, W) uint8, depth
    (T, H, W) float32 range in metres (0 = no hit), position (T, 3) float64 camera (x, y, z) m;
    name identifies it in reports (e.g. "house 100003 episode 7")."""

    rgb: np.ndarray
    semantic: np.ndarray
    depth: np.ndarray
    position: np.ndarray
    name: str = ""

    def __post_init__(self):
        t, h, w = np.shape(self.depth)
        expected = {"rgb": (t, h, w, 3), "semantic": (t, h, w), "position": (t, 3)}
        for key, shape in expected.items():
            if np.shape(getattr(self, key)) != shape:
                raise ValueError(f"trajectory {self.name!r}: {key} has shape {np.shape(getattr(self, key))}, "
                                 f"expected {shape} (from depth {(t, h, w)}).")

    def __len__(self) -> int:
        return len(self.depth)

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.depth.shape[1:3])

    def frame(self, t: int) -> dict[str, np.ndarray]:
        return {"rgb": self.rgb[t], "semantic": self.semantic[t], "depth": self.depth[t],
                "position": self.position[t]}


# --- sources ----------------------------------------------------------------------------------

def trajectories_from_dataset(dataset, min_frames: int = 2, max_episodes: int | None = None
                              ) -> list[Trajectory]:
    """The episodes of a navigation dataset (path or ``EpisodeDataset``) with ≥ ``min_frames``
    observations, as trajectories (first ``max_episodes`` of them, all if None or 0)."""
    from worldsim.data import load_dataset

    if isinstance(dataset, (str, os.PathLike)):
        dataset = load_dataset(dataset)
    needed = ("rgb", "semantic", "depth", "position")
    missing = [k for k in needed if k not in dataset.observation_space.spaces]
    if missing:
        raise ValueError(f"dataset of {dataset.env_id} lacks the observations {missing}; the world model "
                         f"needs a navigation dataset (worldsim/IndoorNav-v0) with {list(needed)}.")
    trajectories = []
    for episode in dataset.episodes:
        obs = episode.observations
        if len(obs["depth"]) < min_frames:
            continue
        house = episode.metadata.get("house_seed", "?")
        trajectories.append(Trajectory(np.asarray(obs["rgb"], np.uint8), np.asarray(obs["semantic"], np.uint8),
                                       np.asarray(obs["depth"], np.float32),
                                       np.asarray(obs["position"], np.float64),
                                       f"house {house} episode {episode.index}"))
        if max_episodes and len(trajectories) >= max_episodes:
            break
    if not trajectories:
        raise ValueError(f"no episode of the dataset has ≥ {min_frames} observations.")
    return trajectories


def trajectory_from_scene(house_seed: int, nodes, height: int, width: int) -> Trajectory:
    """Render the viewpoints ``nodes`` of house ``house_seed`` at height×width."""
    from worldsim.envs.navigation.scene import load_scene

    scene = load_scene(int(house_seed))
    panoramas = [scene.panorama(n, height, width) for n in nodes]
    return Trajectory(np.stack([p["rgb"] for p in panoramas]).astype(np.uint8),
                      np.stack([p["semantic"] for p in panoramas]).astype(np.uint8),
                      np.stack([p["depth"] for p in panoramas]).astype(np.float32),
                      np.stack([scene.position(n) for n in nodes]),
                      f"house {house_seed} nodes {list(map(int, nodes))}")


def scene_path(house_seed: int, length: int, rng: np.random.Generator) -> list[int]:
    """A shortest path of ``length`` viewpoints in house ``house_seed``: a random start, a random
    goal at least ``length − 1`` hops away, truncated (fewer if the house has no such pair)."""
    from worldsim.envs.navigation.scene import load_scene

    graph = load_scene(int(house_seed)).graph
    nodes = sorted(graph.nodes)
    best: list[int] = []
    for start in rng.permutation(nodes):
        hops = nx.single_source_shortest_path(graph, int(start))
        far = sorted(goal for goal, path in hops.items() if len(path) >= length)
        if far:
            return [int(n) for n in hops[far[rng.integers(len(far))]][:length]]
        longest = max(hops.values(), key=len)
        best = longest if len(longest) > len(best) else best
    return [int(n) for n in best]


def scene_trajectories(split: str, count: int, length: int, height: int, width: int,
                       seed: int = 0) -> list[Trajectory]:
    """``count`` walks of ``length`` viewpoints rendered from the houses of ``split`` (house
    i mod |split|, in order), paths drawn with ``seed``."""
    from worldsim.envs.navigation.scene import SPLITS, check_split

    houses = SPLITS[check_split(split)]
    rng = np.random.default_rng(seed)
    return [trajectory_from_scene(houses[i % len(houses)], scene_path(houses[i % len(houses)], length, rng),
                                  height, width) for i in range(count)]


# --- guidance ---------------------------------------------------------------------------------

def guidance_options(config) -> dict:
    """The guidance settings of a world-model config as keyword arguments of
    ``reproject_memory``: ``occlusion_window`` and ``occlusion_tolerance`` from
    ``config.guidance`` (defaults for configs from before it existed: filter off)."""
    guidance = config.get("guidance") or {}
    return {"occlusion_window": int(guidance.get("occlusion_window", DEFAULT_OCCLUSION_WINDOW)),
            "occlusion_tolerance": float(guidance.get("occlusion_tolerance", DEFAULT_OCCLUSION_TOLERANCE))}


def reproject_memory(memory: PointCloudMemory, position, height: int, width: int,
                     capacity: int | None = None, occlusion_window: int = DEFAULT_OCCLUSION_WINDOW,
                     occlusion_tolerance: float = DEFAULT_OCCLUSION_TOLERANCE) -> dict[str, np.ndarray]:
    """Guidance of ``memory`` at ``position``: rgb (H, W, 3) uint8, semantic (H, W) uint8, depth
    (H, W) float32 metres (0 = unseen), mask (H, W) bool; all empty for an empty memory. See
    ``PointCloudMemory.reproject`` for the other arguments."""
    if not len(memory):
        return {"rgb": np.zeros((height, width, 3), np.uint8), "semantic": np.zeros((height, width), np.uint8),
                "depth": np.zeros((height, width), np.float32), "mask": np.zeros((height, width), bool)}
    return memory.reproject(position, height, width, capacity, occlusion_window, occlusion_tolerance)


def guidance_from_frames(frames: list[dict[str, np.ndarray]], position, voxel_size: float | None = DEFAULT_VOXEL_SIZE,
                         capacity: int | None = None, **options) -> dict[str, np.ndarray]:
    """Guidance at ``position`` from a memory holding ``frames`` (dicts with rgb, semantic,
    depth, position) as observed points; ``options``: see ``reproject_memory``."""
    memory = PointCloudMemory(voxel_size=voxel_size, max_range=MAX_RANGE)
    for frame in frames:
        memory.add(frame["rgb"], frame["semantic"], frame["depth"], frame["position"])
    height, width = np.shape(frames[0]["depth"])
    return reproject_memory(memory, position, height, width, capacity, **options)


def roll_example(example: dict[str, np.ndarray], shift: int) -> dict[str, np.ndarray]:
    """Every (H, W, ...) array of an example rolled by ``shift`` columns."""
    return {key: np.roll(value, shift, axis=1) for key, value in example.items()}


class GuidanceBatches:
    """Deterministic batches of (guidance, target) examples; see the module docstring.

    trajectories: the walks (one panorama size); batch_size: examples per batch;
    context_frames: real frames in the memory (1 or 2 is typical); max_gap: largest distance,
    in viewpoints, from the last real frame to the target; roll: random column-roll
    augmentation; voxel_size: of the memory (metres); cache: keep computed guidance;
    occlusion_window, occlusion_tolerance: the guidance's occlusion filter (see
    ``reproject_memory``).
    """

    def __init__(self, trajectories: list[Trajectory], batch_size: int, *, context_frames: int = 2,
                 max_gap: int = 3, seed: int = 0, roll: bool = True,
                 voxel_size: float | None = DEFAULT_VOXEL_SIZE, cache: bool = True,
                 occlusion_window: int = DEFAULT_OCCLUSION_WINDOW,
                 occlusion_tolerance: float = DEFAULT_OCCLUSION_TOLERANCE):
        if not trajectories:
            raise ValueError("GuidanceBatches needs at least one trajectory.")
        sizes = {t.size for t in trajectories}
        if len(sizes) != 1:
            raise ValueError(f"trajectories must share one panorama size, got {sorted(sizes)}.")
        if batch_size < 1 or context_frames < 1 or max_gap < 1:
            raise ValueError(f"batch_size, context_frames and max_gap must be ≥ 1, got {batch_size}, "
                             f"{context_frames}, {max_gap}.")
        self.trajectories, self.batch_size = trajectories, int(batch_size)
        self.context_frames, self.max_gap = int(context_frames), int(max_gap)
        self.seed, self.roll, self.voxel_size = int(seed), bool(roll), voxel_size
        self.height, self.width = sizes.pop()
        self.examples = [(i, t, gap) for i, trajectory in enumerate(trajectories)
                         for t in range(1, len(trajectory)) for gap in range(1, min(t, max_gap) + 1)]
        if not self.examples:
            raise ValueError("no trajectory has two frames; nothing to predict.")
        self._cache: dict[tuple[int, int, int], dict[str, np.ndarray]] | None = {} if cache else None
        self._capacity = self.context_frames * self.height * self.width
        self.options = {"occlusion_window": occlusion_window, "occlusion_tolerance": occlusion_tolerance}

    def __len__(self) -> int:
        return len(self.examples)

    def example(self, index: int) -> dict[str, np.ndarray]:
        """Example ``index`` of ``self.examples`` (un-augmented), float depth as float32."""
        key = self.examples[index]
        if self._cache is not None and key in self._cache:
            stored = self._cache[key]
        else:
            stored = self._compute(*key)
            if self._cache is not None:
                self._cache[key] = stored
        return {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in stored.items()}

    def _compute(self, trajectory_index: int, t: int, gap: int) -> dict[str, np.ndarray]:
        trajectory = self.trajectories[trajectory_index]
        last = t - gap
        context = [trajectory.frame(s) for s in range(max(0, last - self.context_frames + 1), last + 1)]
        guidance = guidance_from_frames(context, trajectory.position[t], self.voxel_size, self._capacity,
                                        **self.options)
        return {"guidance_rgb": guidance["rgb"], "guidance_semantic": guidance["semantic"],
                "guidance_depth": guidance["depth"].astype(np.float16), "guidance_mask": guidance["mask"],
                "target_rgb": trajectory.rgb[t], "target_semantic": trajectory.semantic[t],
                "target_depth": trajectory.depth[t].astype(np.float16)}

    def batch_at(self, step: int) -> dict[str, np.ndarray]:
        """The batch of training step ``step`` (same step → same batch)."""
        rng = np.random.default_rng((self.seed, int(step)))
        indices = rng.integers(len(self.examples), size=self.batch_size)
        shifts = rng.integers(self.width, size=self.batch_size) if self.roll else np.zeros(self.batch_size, int)
        examples = [roll_example(self.example(int(i)), int(s)) for i, s in zip(indices, shifts)]
        return {key: np.stack([e[key] for e in examples]) for key in examples[0]}
