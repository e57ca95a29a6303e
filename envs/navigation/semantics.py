"""Semantic classes, room types and the priors that make generated houses house-like.

Class ids follow mpcat40 (the Matterport3D categories used by R2R and Pathdreamer): 0 is
``void`` (a ray that hit nothing), 1–40 are the mpcat40 categories. Models one-hot them to
``NUM_CLASSES = 42`` channels (41, ``masking``, is never rendered here).

The room-adjacency prior says which room types like to share a wall (and a door): the house
generator chains rooms so that a kitchen usually sits beside the dining room and a bathroom
beside a bedroom. Furniture is listed per room type; every object has an instruction name
("fridge") and the mpcat40 class it renders as (``appliances``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

NUM_CLASSES = 42

# mpcat40 ids of the classes worldsim renders (a subset of the 40).
CLASS_IDS: dict[str, int] = {
    "void": 0, "wall": 1, "floor": 2, "chair": 3, "door": 4, "table": 5, "picture": 6,
    "cabinet": 7, "window": 9, "sofa": 10, "bed": 11, "chest_of_drawers": 13, "plant": 14,
    "sink": 15, "ceiling": 17, "toilet": 18, "towel": 20, "mirror": 21, "tv_monitor": 22,
    "shower": 23, "bathtub": 25, "counter": 26, "fireplace": 27, "shelving": 31,
    "appliances": 37,
}
CLASS_NAMES: dict[int, str] = {index: name for name, index in CLASS_IDS.items()}

# Base colour of every rendered class, RGB in [0, 1]; each house jitters them.
CLASS_COLORS: dict[str, tuple[float, float, float]] = {
    "wall": (0.86, 0.84, 0.78), "floor": (0.55, 0.42, 0.30), "ceiling": (0.95, 0.95, 0.93),
    "door": (0.45, 0.30, 0.18), "window": (0.55, 0.75, 0.95), "chair": (0.40, 0.25, 0.15),
    "table": (0.60, 0.45, 0.28), "picture": (0.75, 0.30, 0.30), "cabinet": (0.70, 0.65, 0.55),
    "sofa": (0.30, 0.40, 0.60), "bed": (0.85, 0.85, 0.95), "chest_of_drawers": (0.50, 0.35, 0.25),
    "plant": (0.20, 0.55, 0.20), "sink": (0.90, 0.92, 0.95), "toilet": (0.97, 0.97, 0.97),
    "towel": (0.90, 0.70, 0.40), "mirror": (0.80, 0.88, 0.92), "tv_monitor": (0.08, 0.08, 0.10),
    "shower": (0.75, 0.85, 0.90), "bathtub": (0.95, 0.95, 0.98), "counter": (0.35, 0.35, 0.38),
    "fireplace": (0.50, 0.22, 0.15), "shelving": (0.55, 0.40, 0.25), "appliances": (0.82, 0.82, 0.85),
}

ROOM_TYPES: tuple[str, ...] = (
    "kitchen", "dining room", "living room", "bedroom", "bathroom", "office")
HALLWAY = "hallway"

# How likely a room type is to be drawn for one of the free slots of a house.
ROOM_TYPE_WEIGHTS: dict[str, float] = {
    "kitchen": 0.0, "dining room": 0.08, "living room": 0.05, "bedroom": 0.40,
    "bathroom": 0.27, "office": 0.20}
# Every house has these.
REQUIRED_ROOMS: tuple[str, ...] = ("kitchen", "living room", "bedroom", "bathroom")
# At most this many rooms of a type.
MAX_ROOMS_OF_TYPE: dict[str, int] = {
    "kitchen": 1, "dining room": 1, "living room": 1, "bedroom": 4, "bathroom": 3, "office": 2}

# Symmetric affinity of two room types for being neighbours along the hallway; rooms are
# chained by sampling the next room with probability proportional to its affinity to the last.
_ADJACENCY_PAIRS: dict[tuple[str, str], float] = {
    ("kitchen", "dining room"): 8.0, ("dining room", "living room"): 6.0,
    ("kitchen", "living room"): 3.0, ("bedroom", "bathroom"): 5.0, ("bedroom", "bedroom"): 3.0,
    ("bedroom", "office"): 2.0, ("office", "living room"): 1.5, ("bathroom", "bathroom"): 0.2,
    ("kitchen", "bathroom"): 0.3, ("kitchen", "bedroom"): 0.3,
}


def adjacency_affinity(first: str, second: str) -> float:
    """Prior weight of ``first`` and ``second`` sharing a wall (1.0 when not listed)."""
    return _ADJACENCY_PAIRS.get((first, second), _ADJACENCY_PAIRS.get((second, first), 1.0))


# Pairs of neighbouring rooms that get a door between them (besides their hallway doors).
CONNECTING_DOOR_PROBABILITY: dict[frozenset, float] = {
    frozenset({"kitchen", "dining room"}): 0.9, frozenset({"dining room", "living room"}): 0.7,
    frozenset({"bedroom", "bathroom"}): 0.5, frozenset({"kitchen", "living room"}): 0.4,
}


@dataclasses.dataclass(frozen=True)
class FurnitureKind:
    """One kind of object a room may contain.

    name: what instructions call it ("fridge").
    semantic: the mpcat40 class it renders as.
    size: (min, max) of (width along the wall, depth from the wall, height), metres.
    placement: "wall" (back against a wall) or "open" (free-standing in the room).
    shape: "box", "table" (top and four legs), "chair" (seat and back) or "panel" (a flat
      object hung on a wall at height, such as a picture or a tv).
    """

    name: str
    semantic: str
    size: tuple[tuple[float, float, float], tuple[float, float, float]]
    placement: str = "wall"
    shape: str = "box"


def _kind(name, semantic, low, high, placement="wall", shape="box") -> FurnitureKind:
    return FurnitureKind(name, semantic, (tuple(low), tuple(high)), placement, shape)


# Per room type: (kind, probability the room has it). Salient objects first.
ROOM_FURNITURE: dict[str, list[tuple[FurnitureKind, float]]] = {
    "kitchen": [
        (_kind("fridge", "appliances", (0.7, 0.65, 1.7), (0.9, 0.75, 1.9)), 1.0),
        (_kind("counter", "counter", (1.6, 0.6, 0.9), (2.6, 0.65, 0.95)), 1.0),
        (_kind("stove", "appliances", (0.6, 0.6, 0.9), (0.75, 0.65, 0.95)), 0.8),
        (_kind("kitchen island", "counter", (1.2, 0.8, 0.9), (1.8, 1.0, 0.95), "open"), 0.4),
        (_kind("cabinet", "cabinet", (0.8, 0.45, 1.8), (1.2, 0.6, 2.0)), 0.5),
    ],
    "dining room": [
        (_kind("dining table", "table", (1.4, 0.9, 0.75), (2.2, 1.1, 0.78), "open", "table"), 1.0),
        (_kind("chair", "chair", (0.45, 0.45, 0.9), (0.5, 0.5, 1.0), "open", "chair"), 1.0),
        (_kind("sideboard", "cabinet", (1.2, 0.45, 0.8), (1.8, 0.55, 0.9)), 0.6),
        (_kind("picture", "picture", (0.6, 0.04, 0.5), (1.0, 0.04, 0.8), "wall", "panel"), 0.7),
        (_kind("plant", "plant", (0.4, 0.4, 0.9), (0.6, 0.6, 1.4)), 0.5),
    ],
    "living room": [
        (_kind("sofa", "sofa", (1.8, 0.85, 0.8), (2.4, 1.0, 0.9)), 1.0),
        (_kind("tv", "tv_monitor", (1.0, 0.06, 0.6), (1.4, 0.06, 0.8), "wall", "panel"), 0.9),
        (_kind("coffee table", "table", (0.9, 0.5, 0.42), (1.2, 0.7, 0.48), "open", "table"), 0.8),
        (_kind("fireplace", "fireplace", (1.2, 0.4, 1.1), (1.6, 0.5, 1.3)), 0.4),
        (_kind("bookshelf", "shelving", (0.8, 0.35, 1.8), (1.2, 0.4, 2.1)), 0.6),
        (_kind("plant", "plant", (0.4, 0.4, 0.9), (0.6, 0.6, 1.4)), 0.6),
        (_kind("armchair", "chair", (0.7, 0.7, 0.9), (0.85, 0.85, 1.0), "open", "chair"), 0.5),
    ],
    "bedroom": [
        (_kind("bed", "bed", (1.4, 2.0, 0.55), (1.8, 2.1, 0.65)), 1.0),
        (_kind("dresser", "chest_of_drawers", (0.9, 0.45, 0.8), (1.3, 0.55, 1.1)), 0.8),
        (_kind("wardrobe", "cabinet", (1.0, 0.55, 1.9), (1.6, 0.65, 2.1)), 0.6),
        (_kind("picture", "picture", (0.5, 0.04, 0.4), (0.9, 0.04, 0.7), "wall", "panel"), 0.6),
        (_kind("plant", "plant", (0.35, 0.35, 0.8), (0.5, 0.5, 1.2)), 0.3),
    ],
    "bathroom": [
        (_kind("toilet", "toilet", (0.4, 0.65, 0.8), (0.45, 0.7, 0.85)), 1.0),
        (_kind("sink", "sink", (0.55, 0.45, 0.85), (0.8, 0.55, 0.9)), 1.0),
        (_kind("bathtub", "bathtub", (1.5, 0.7, 0.55), (1.7, 0.8, 0.6)), 0.6),
        (_kind("shower", "shower", (0.9, 0.9, 2.0), (1.0, 1.0, 2.1)), 0.5),
        (_kind("mirror", "mirror", (0.5, 0.03, 0.7), (0.8, 0.03, 0.9), "wall", "panel"), 0.8),
        (_kind("towel", "towel", (0.4, 0.05, 0.6), (0.6, 0.05, 0.8), "wall", "panel"), 0.6),
    ],
    "office": [
        (_kind("desk", "table", (1.2, 0.6, 0.74), (1.6, 0.8, 0.76), "wall", "table"), 1.0),
        (_kind("office chair", "chair", (0.5, 0.5, 1.0), (0.6, 0.6, 1.1), "open", "chair"), 1.0),
        (_kind("bookshelf", "shelving", (0.8, 0.35, 1.8), (1.2, 0.4, 2.1)), 0.9),
        (_kind("monitor", "tv_monitor", (0.5, 0.05, 0.35), (0.7, 0.05, 0.45), "wall", "panel"), 0.6),
        (_kind("plant", "plant", (0.35, 0.35, 0.8), (0.5, 0.5, 1.2)), 0.4),
    ],
    HALLWAY: [
        (_kind("picture", "picture", (0.5, 0.04, 0.4), (0.9, 0.04, 0.7), "wall", "panel"), 0.6),
        (_kind("plant", "plant", (0.35, 0.35, 0.8), (0.5, 0.5, 1.2)), 0.4),
    ],
}

# Objects an object-goal episode may ask for (each is in one room type's list above).
OBJECT_GOALS: tuple[str, ...] = (
    "fridge", "stove", "dining table", "sofa", "tv", "fireplace", "bed", "wardrobe", "toilet",
    "bathtub", "shower", "desk", "bookshelf")


def jitter_color(rng: np.random.Generator, base: tuple[float, float, float],
                 amount: float = 0.06) -> np.ndarray:
    """``base`` RGB with a per-house brightness and tint change, clipped to [0, 1]."""
    brightness = rng.uniform(1.0 - 2 * amount, 1.0 + amount)
    tint = rng.normal(0.0, amount / 2, size=3)
    return np.clip(np.asarray(base) * brightness + tint, 0.0, 1.0)
