"""A two-task image-classification dataset rendered from worldsim's own environments.

Task 0, ``room_type``: the room a navigation viewpoint lies in (7 classes, ``ROOM_KINDS``), from
its equirectangular RGB panorama. Viewpoints of kind "doorway" are skipped. Training uses the
first ``nav_houses`` houses of the ``train`` split; evaluation those of ``val_unseen`` (houses
never seen in training).

Task 1, ``gripper_place``: where the gripper is — the quadrant of the cube area its tip is
over, as seen in the image (4 classes, ``PLACES``: "top" = the robot's side, x < 0.4 m;
"right" = y > 0) — from a BlockSort image with one cube of each of ``BLOCK_COLOURS`` at random
places (``reset(seed=s)``). The gripper drives (steps of ≤ 0.1 m per axis, at most
``STEPS_PER_WAYPOINT`` per waypoint) back to the lane x = ``APPROACH_LANE_X``, along it, and
forward to a point drawn uniformly from ``GRIPPER_LOW`` … ``GRIPPER_HIGH`` with
``default_rng(s)`` (it may push cubes on the way). The label is read from the final state (the
measured gripper xy); episodes with the gripper within ``MIN_MARGIN`` (1 cm) of a quadrant
border are skipped and the next seed is used. Training uses episode seeds from 0, evaluation
seeds from ``EVAL_SEED_OFFSET``.

Two labels tried first stayed at chance (loss flat at ln 4) for the dense mu ViT within
600–1000 steps, although a linear probe on a pixel "redness" map reads the second at 97 %:
"colour of the cube nearest the gripper" and "quadrant of the red cube". A 4 cm cube is
~3×3 pixels here, one of 128 patches; the gripper and arm span many.

Panoramas are rendered at twice the requested ``image_size`` (height, width) and 2×2
area-averaged (anti-aliasing). BlockSort images are rendered at 4× and the central window
around the cubes (``BLOCK_CROP``: top-left corner as fractions of the image, half its height
and width — the floor around the table is cut away) is 2×2 area-averaged to ``image_size``,
so the 4 cm cubes are ~4 pixels wide at 32×64.

A split is cached as one ``.npz`` (written to a temporary name, then renamed) holding
``images`` (N, H, W, 3) uint8, ``labels`` (N,) int32 (task-local class index), ``tasks`` (N,)
int32 and ``sources`` (N,) int64 (house seed, or episode seed), plus the ``spec`` it was built
from. ``VisionBatches.batch_at(step)`` draws half of each batch from each task, deterministically
from (seed, step); room-type panoramas are rolled by a random yaw (a heading rotation) when
``roll`` is set.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Iterable

import gymnasium
import numpy as np

# importing any worldsim.envs module runs worldsim/envs/__init__.py, which registers the env ids
from worldsim.envs.manipulation.block_sort import BLOCK_AREA_CENTRE  # the quadrants' corner
from worldsim.envs.navigation.scene import SPLITS, load_scene

ROOM_KINDS = ("kitchen", "dining room", "living room", "bedroom", "bathroom", "office", "hallway")
BLOCK_COLOURS = ("blue", "yellow", "red", "green")
PLACES = ("top left", "top right", "bottom left", "bottom right")
TASKS = ("room_type", "gripper_place")
TASK_CLASSES = (ROOM_KINDS, PLACES)
CLASS_NAMES = tuple(f"{task}/{name}" for task, names in zip(TASKS, TASK_CLASSES) for name in names)
# first index of each task's classes in the union of labels (CLASS_NAMES)
CLASS_OFFSETS = tuple(int(x) for x in np.cumsum([0] + [len(c) for c in TASK_CLASSES[:-1]]))
CLASS_TASK = np.repeat(np.arange(len(TASKS)), [len(c) for c in TASK_CLASSES]).astype(np.int32)

SKIPPED_ROOM_KINDS = ("doorway",)
APPROACH_LANE_X = 0.22  # m: x of the lane behind the cube area (cubes reset at x ≥ 0.28)
GRIPPER_LOW, GRIPPER_HIGH = (0.28, -0.14), (0.52, 0.14)  # m: where the gripper is sent
STEPS_PER_WAYPOINT = 8
MAX_STEP = 0.1  # m per axis per step (the env's action bound)
BLOCK_CROP = (0.22, 0.25)  # top, left of the crop window, fractions of the 4× render
MIN_MARGIN = 0.01  # m from a quadrant border
EVAL_SEED_OFFSET = 1_000_000
SPLIT_NAMES = ("train", "eval")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What a cached split is built from. ``nav_houses`` houses of the navigation split
    (train → ``train``, eval → ``val_unseen``); ``block_episodes`` BlockSort examples."""

    split: str
    image_size: tuple[int, int]
    nav_houses: int
    block_episodes: int

    def __post_init__(self):
        if self.split not in SPLIT_NAMES:
            raise ValueError(f"split={self.split!r}; allowed: {', '.join(SPLIT_NAMES)}")
        h, w = self.image_size
        if h < 8 or w < 8:
            raise ValueError(f"image_size={self.image_size}; each side must be ≥ 8 pixels")
        nav_split = "train" if self.split == "train" else "val_unseen"
        if not 1 <= self.nav_houses <= len(SPLITS[nav_split]):
            raise ValueError(f"nav_houses={self.nav_houses}; allowed: 1 … "
                             f"{len(SPLITS[nav_split])} ({nav_split} split)")
        if self.block_episodes < 1:
            raise ValueError(f"block_episodes={self.block_episodes}; it must be ≥ 1")

    @property
    def nav_split(self) -> str:
        return "train" if self.split == "train" else "val_unseen"

    def to_json(self) -> str:
        return json.dumps({**dataclasses.asdict(self), "image_size": list(self.image_size)},
                          sort_keys=True)

    def file_name(self) -> str:
        h, w = self.image_size
        return f"vision_{self.split}_{h}x{w}_nav{self.nav_houses}_block{self.block_episodes}.npz"


@dataclasses.dataclass
class VisionDataset:
    """Images of both tasks; ``labels`` are task-local class indices (see ``TASK_CLASSES``)."""

    images: np.ndarray   # (N, H, W, 3) uint8
    labels: np.ndarray   # (N,) int32
    tasks: np.ndarray    # (N,) int32
    sources: np.ndarray  # (N,) int64: house seed (task 0) or episode seed (task 1)
    spec: DatasetSpec

    def __len__(self) -> int:
        return len(self.labels)

    def task_indices(self, task: int) -> np.ndarray:
        return np.flatnonzero(self.tasks == task)

    def global_labels(self) -> np.ndarray:
        """Labels as indices into ``CLASS_NAMES`` (the union of both tasks' classes)."""
        return self.labels + np.asarray(CLASS_OFFSETS, np.int32)[self.tasks]

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, images=self.images, labels=self.labels, tasks=self.tasks,
                 sources=self.sources, spec=np.asarray(self.spec.to_json()))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> "VisionDataset":
        with np.load(path) as data:
            spec = json.loads(str(data["spec"]))
            spec["image_size"] = tuple(spec["image_size"])
            return cls(data["images"], data["labels"], data["tasks"], data["sources"],
                       DatasetSpec(**spec))


def _downsample(image: np.ndarray) -> np.ndarray:
    """(2H, 2W, 3) uint8 → (H, W, 3) by 2×2 averaging."""
    h, w = image.shape[0] // 2, image.shape[1] // 2
    pooled = image[: 2 * h, : 2 * w].reshape(h, 2, w, 2, 3).astype(np.float32).mean(axis=(1, 3))
    return np.round(pooled).astype(np.uint8)


def room_examples(houses: Iterable[int], image_size: tuple[int, int]):
    """(images, labels, house seeds) of every non-doorway viewpoint of the given houses."""
    images, labels, sources = [], [], []
    h, w = image_size
    for seed in houses:
        scene = load_scene(int(seed))
        for node in sorted(scene.graph.nodes):
            kind = scene.room_kind(node)
            if kind in SKIPPED_ROOM_KINDS:
                continue
            if kind not in ROOM_KINDS:
                raise ValueError(f"house {seed} viewpoint {node} has room kind {kind!r}; "
                                 f"known kinds: {', '.join(ROOM_KINDS + SKIPPED_ROOM_KINDS)}")
            images.append(_downsample(scene.panorama(node, 2 * h, 2 * w)["rgb"]))
            labels.append(ROOM_KINDS.index(kind))
            sources.append(int(seed))
    return images, labels, sources


def place_label(xy) -> tuple[int, float]:
    """(index into ``PLACES`` of the quadrant of ``xy`` around the cube-area centre, its
    distance to the nearest quadrant border in metres)."""
    x, y = np.asarray(xy, np.float64) - BLOCK_AREA_CENTRE
    return 2 * int(x >= 0) + int(y > 0), float(min(abs(x), abs(y)))


def _drive_to(env, obs, xy) -> dict[str, np.ndarray]:
    """Steps the gripper target towards ``xy`` (≤ ``MAX_STEP`` per axis per step)."""
    for _ in range(STEPS_PER_WAYPOINT):
        delta = np.asarray(xy, np.float64) - obs["effector_target_translation"]
        if np.all(np.abs(delta) < 1e-6):
            break
        obs, *_ = env.step(np.clip(delta, -MAX_STEP, MAX_STEP).astype(np.float32))
    return obs


def _crop_block_image(image: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(4H, 4W, 3) render → the (2H, 2W) window at ``BLOCK_CROP`` → (H, W, 3)."""
    h, w = image_size
    top, left = round(BLOCK_CROP[0] * 4 * h), round(BLOCK_CROP[1] * 4 * w)
    return _downsample(image[top: top + 2 * h, left: left + 2 * w])


def block_examples(count: int, first_seed: int, image_size: tuple[int, int]):
    """(images, labels, episode seeds) of ``count`` unambiguous BlockSort examples."""
    h, w = image_size
    env = gymnasium.make("worldsim/BlockSort-v0", obs_mode="state", render_mode="rgb_array",
                         image_size=(4 * h, 4 * w), colours=BLOCK_COLOURS, n_blocks_per_colour=1)
    images, labels, sources = [], [], []
    seed = first_seed
    try:
        while len(labels) < count:
            obs, _ = env.reset(seed=seed)
            target = np.random.default_rng(seed).uniform(GRIPPER_LOW, GRIPPER_HIGH)
            start = np.asarray(obs["effector_target_translation"], np.float64)
            for waypoint in ((APPROACH_LANE_X, start[1]), (APPROACH_LANE_X, target[1]), target):
                obs = _drive_to(env, obs, waypoint)
            label, margin = place_label(obs["effector_translation"])
            if margin >= MIN_MARGIN:
                images.append(_crop_block_image(env.render(), image_size))
                labels.append(label)
                sources.append(seed)
            seed += 1
    finally:
        env.close()
    return images, labels, sources


def build_dataset(spec: DatasetSpec, progress: bool = False) -> VisionDataset:
    """Renders a split (room panoramas, then BlockSort examples)."""
    houses = SPLITS[spec.nav_split][: spec.nav_houses]
    if progress:
        print(f"vision data [{spec.split}]: {len(houses)} houses, {spec.block_episodes} "
              "BlockSort episodes", flush=True)
    room = room_examples(houses, spec.image_size)
    first_seed = 0 if spec.split == "train" else EVAL_SEED_OFFSET
    block = block_examples(spec.block_episodes, first_seed, spec.image_size)
    h, w = spec.image_size
    images = np.stack(room[0] + block[0]) if room[0] or block[0] else np.zeros((0, h, w, 3))
    tasks = np.asarray([0] * len(room[1]) + [1] * len(block[1]), np.int32)
    return VisionDataset(images.astype(np.uint8), np.asarray(room[1] + block[1], np.int32), tasks,
                         np.asarray(room[2] + block[2], np.int64), spec)


def load_or_build(spec: DatasetSpec, cache_dir: str | Path,
                  progress: bool = False) -> VisionDataset:
    """The cached split at ``cache_dir/spec.file_name()``, built and cached when missing."""
    path = Path(cache_dir) / spec.file_name()
    if path.exists():
        dataset = VisionDataset.load(path)
        if dataset.spec != spec:
            raise ValueError(f"{path} holds {dataset.spec}, not {spec}; delete it or use "
                             "another data.cache_dir")
        return dataset
    dataset = build_dataset(spec, progress)
    dataset.save(path)
    return dataset


class VisionBatches:
    """Deterministic mixed-task batches: ``batch_at(step)`` → dict(images uint8 (B, H, W, 3),
    labels int32 (B,) task-local, task_ids int32 (B,)), half of each task (the first half room
    types), drawn without replacement within a batch from
    ``np.random.default_rng((seed, step))``."""

    def __init__(self, dataset: VisionDataset, batch_size: int, seed: int, roll: bool = True):
        if batch_size < 2 or batch_size % len(TASKS):
            raise ValueError(f"batch_size={batch_size}; it must be a positive multiple of "
                             f"{len(TASKS)} (one share per task)")
        self.indices = [dataset.task_indices(t) for t in range(len(TASKS))]
        per_task = batch_size // len(TASKS)
        for task, idx in enumerate(self.indices):
            if len(idx) < per_task:
                raise ValueError(f"task {TASKS[task]!r} has {len(idx)} examples, fewer than the "
                                 f"{per_task} a batch of {batch_size} needs")
        self.dataset, self.batch_size, self.seed, self.roll = dataset, batch_size, seed, roll
        self.per_task = per_task

    def batch_at(self, step: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng((self.seed, step))
        chosen = np.concatenate([rng.choice(idx, self.per_task, replace=False)
                                 for idx in self.indices])
        images = self.dataset.images[chosen]
        if self.roll:
            width = images.shape[2]
            shifts = rng.integers(0, width, self.per_task)
            images[: self.per_task] = np.stack([np.roll(im, s, axis=1) for im, s in
                                                zip(images[: self.per_task], shifts)])
        return {"images": images, "labels": self.dataset.labels[chosen],
                "task_ids": self.dataset.tasks[chosen]}
