"""A house with everything navigation needs, built once per seed and cached; and the splits.

Splits (house seeds never shared between train and the unseen splits):

========== ============================ ===================================================
split      house seeds                  episodes
========== ============================ ===================================================
train      0 … 999                      start–goal pairs whose hash bucket is not 0
val_seen   0 … 999 (the train houses)   start–goal pairs in hash bucket 0 (never in train)
val_unseen 100000 … 100199              any pair
test       200000 … 200199              any pair
========== ============================ ===================================================
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib

import networkx as nx
import numpy as np

from worldsim.envs.navigation.graph import build_navigation_graph
from worldsim.envs.navigation.house import House, generate_house
from worldsim.envs.navigation.render import HouseRenderer

SPLITS: dict[str, range] = {
    "train": range(0, 1000),
    "val_seen": range(0, 1000),
    "val_unseen": range(100_000, 100_200),
    "test": range(200_000, 200_200),
}
VAL_SEEN_BUCKETS = 10  # one pair in ten of a train house is held out for val_seen


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}. Known splits: {', '.join(SPLITS)}.")
    return split


def check_house_seed(split: str, seed: int) -> int:
    """``seed`` if it is one of ``split``'s houses, else a ValueError naming the range."""
    houses = SPLITS[check_split(split)]
    if not isinstance(seed, (int, np.integer)) or int(seed) not in houses:
        raise ValueError(f"House seed {seed!r} is not in split {split!r}; its houses are seeds "
                         f"{houses.start} to {houses.stop - 1}.")
    return int(seed)


def pair_in_split(split: str, house_seed: int, start: int, goal: int) -> bool:
    """Whether the start–goal pair belongs to ``split`` (the train/val_seen hold-out)."""
    if split not in ("train", "val_seen"):
        return True
    digest = hashlib.blake2b(f"{house_seed}:{start}:{goal}".encode(), digest_size=4).digest()
    held_out = int.from_bytes(digest, "little") % VAL_SEEN_BUCKETS == 0
    return held_out == (split == "val_seen")


@dataclasses.dataclass(frozen=True)
class HouseScene:
    """A house, its renderer, navigation graph and all-pairs graph distances (metres)."""

    house: House
    renderer: HouseRenderer
    graph: nx.Graph
    distances: dict

    def position(self, node: int) -> np.ndarray:
        """(x, y, z) of a viewpoint's camera, metres."""
        return np.asarray(self.graph.nodes[node]["position"], np.float64)

    def room_kind(self, node: int) -> str:
        return self.graph.nodes[node]["room_kind"]

    def panorama(self, node: int, height: int = 128, width: int = 256) -> dict[str, np.ndarray]:
        return self.renderer.panorama(self.position(node), height, width)


@functools.lru_cache(maxsize=32)
def load_scene(seed: int) -> HouseScene:
    """The scene of house ``seed`` (cached: generation and graph building take ~0.5 s)."""
    house = generate_house(seed)
    renderer = HouseRenderer(house.boxes)
    graph = build_navigation_graph(house, renderer)
    distances = dict(nx.all_pairs_dijkstra_path_length(graph, weight="weight"))
    return HouseScene(house, renderer, graph, distances)
