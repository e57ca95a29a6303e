"""Procedural houses: a hallway with rooms on both sides, doors, windows and furniture.

``generate_house(seed)`` is a pure function of the seed. The plan:

* 4–10 rooms: a kitchen, a living room, a bedroom and a bathroom always, the rest drawn from
  ``ROOM_TYPE_WEIGHTS``. Rooms are chained by the adjacency prior of ``semantics`` (the next
  room is drawn with probability proportional to its affinity to the previous one), then the
  chain is laid out as a U around a straight hallway: the first half left to right along its
  north side, the rest right to left along its south side, so chained rooms share a wall.
* Every room has a door to the hallway; neighbours such as kitchen and dining room often
  get a connecting door as well. Exterior walls get windows.
* Furniture of the room's type is placed against walls (away from doors) and in the open,
  without overlaps, leaving walking space.

Frame: x along the hallway, y across it, z up, floor at z = 0, metres. The hallway is
``rooms[0]``; room rectangles share their boundary lines, on which walls of
``WALL_THICKNESS`` are centred.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from worldsim.envs.navigation import furnishing
from worldsim.envs.navigation.furnishing import FurnitureItem
from worldsim.envs.navigation.geometry import Box, make_box
from worldsim.envs.navigation.semantics import (
    CLASS_COLORS, CLASS_IDS, HALLWAY, MAX_ROOMS_OF_TYPE, REQUIRED_ROOMS, ROOM_TYPE_WEIGHTS,
    adjacency_affinity, CONNECTING_DOOR_PROBABILITY, jitter_color)

WALL_THICKNESS = 0.1
DOOR_HEIGHT = 2.1
MIN_ROOMS, MAX_ROOMS = 4, 10


@dataclasses.dataclass(frozen=True)
class Room:
    """A rectangle of floor. low, high: (x, y) corners, metres."""

    index: int
    kind: str
    low: tuple[float, float]
    high: tuple[float, float]

    def contains(self, xy, margin: float = 0.0) -> bool:
        return (self.low[0] + margin <= xy[0] <= self.high[0] - margin
                and self.low[1] + margin <= xy[1] <= self.high[1] - margin)

    @property
    def center(self) -> np.ndarray:
        return (np.asarray(self.low) + np.asarray(self.high)) / 2


@dataclasses.dataclass(frozen=True)
class Door:
    """An opening in the wall between two rooms.

    center: (x, y) of the opening, on the wall line. along_x: whether the wall runs along x.
    width: metres. rooms: the indices of the two rooms it joins.
    """

    center: tuple[float, float]
    along_x: bool
    width: float
    rooms: tuple[int, int]


@dataclasses.dataclass(frozen=True)
class House:
    """Everything about one generated house. ``boxes`` is its whole geometry."""

    seed: int
    wall_height: float
    rooms: tuple[Room, ...]
    doors: tuple[Door, ...]
    furniture: tuple[FurnitureItem, ...]
    boxes: tuple[Box, ...]

    def room_at(self, xy) -> int:
        """Index of the room whose floor contains ``xy``, or -1 (inside a wall or outside)."""
        for room in self.rooms:
            if room.contains(xy, margin=WALL_THICKNESS / 2):
                return room.index
        return -1

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) corners of the whole plan."""
        low = np.min([r.low for r in self.rooms], axis=0)
        high = np.max([r.high for r in self.rooms], axis=0)
        return low, high


def _choose_room_types(rng: np.random.Generator) -> list[str]:
    count = int(rng.integers(MIN_ROOMS, MAX_ROOMS + 1))
    kinds = list(REQUIRED_ROOMS)
    names = list(ROOM_TYPE_WEIGHTS)
    while len(kinds) < count:
        weights = np.array([ROOM_TYPE_WEIGHTS[n] * (kinds.count(n) < MAX_ROOMS_OF_TYPE[n])
                            for n in names])
        kinds.append(names[rng.choice(len(names), p=weights / weights.sum())])
    return kinds


def _chain_by_adjacency(rng: np.random.Generator, kinds: list[str]) -> list[str]:
    """Orders rooms so consecutive ones follow the adjacency prior, starting at the living room."""
    remaining = list(kinds)
    chain = [remaining.pop(remaining.index("living room"))]
    while remaining:
        weights = np.array([adjacency_affinity(chain[-1], k) for k in remaining])
        chain.append(remaining.pop(rng.choice(len(remaining), p=weights / weights.sum())))
    return chain


def _row_edges(rng: np.random.Generator, count: int, length: float | None) -> np.ndarray:
    widths = rng.uniform(3.0, 5.0, size=count)
    if length is not None:
        widths *= length / widths.sum()
    return np.concatenate([[0.0], np.cumsum(widths)])


def _lay_out_rooms(rng, chain) -> tuple[list[Room], float]:
    """The hallway and the rooms of ``chain`` as a U around it; returns (rooms, hallway width)."""
    north_count = (len(chain) + 1) // 2
    hall_width = float(rng.uniform(1.4, 2.0))
    north = _row_edges(rng, north_count, None)
    south = _row_edges(rng, len(chain) - north_count, None)
    length = max(north[-1], south[-1])
    north, south = north * length / north[-1], south * length / south[-1]
    rooms = [Room(0, HALLWAY, (0.0, 0.0), (float(length), hall_width))]
    for i in range(north_count):
        depth = rng.uniform(3.2, 5.0)
        rooms.append(Room(len(rooms), chain[i], (north[i], hall_width), (north[i + 1], hall_width + depth)))
    south_kinds = chain[north_count:][::-1]  # the chain continues right to left
    for i, kind in enumerate(south_kinds):
        depth = rng.uniform(3.2, 5.0)
        rooms.append(Room(len(rooms), kind, (south[i], -depth), (south[i + 1], 0.0)))
    return [dataclasses.replace(r, low=tuple(map(float, r.low)), high=tuple(map(float, r.high)))
            for r in rooms], hall_width


def _door_on_interval(rng, low: float, high: float, width: float) -> float | None:
    """Centre of a door of ``width`` within [low, high] keeping 0.4 m from the corners."""
    margin = 0.4 + width / 2
    if high - low < 2 * margin:
        return None
    return float(rng.uniform(low + margin, high - margin))


def _place_doors(rng, rooms: list[Room], hall_width: float) -> list[Door]:
    doors = []
    for room in rooms[1:]:
        width = float(rng.uniform(0.9, 1.1))
        x = _door_on_interval(rng, room.low[0], room.high[0], width)
        wall_y = hall_width if room.low[1] >= hall_width else 0.0
        doors.append(Door((x, wall_y), True, width, (0, room.index)))
    for a in rooms[1:]:
        for b in rooms[1:]:
            side_by_side = a.index < b.index and abs(a.high[0] - b.low[0]) < 1e-9 and (
                (a.low[1] >= hall_width) == (b.low[1] >= hall_width))
            if not side_by_side:
                continue
            chance = CONNECTING_DOOR_PROBABILITY.get(frozenset({a.kind, b.kind}), 0.0)
            if rng.random() >= chance:
                continue
            width = float(rng.uniform(0.9, 1.1))
            # The shared part of the wall is as deep as the shallower room.
            low_y, high_y = max(a.low[1], b.low[1]), min(a.high[1], b.high[1])
            y = _door_on_interval(rng, low_y, high_y, width)
            if y is not None:
                doors.append(Door((a.high[0], y), False, width, (a.index, b.index)))
    return doors


def _wall_line_boxes(fixed: float, along_x: bool, start: float, end: float, openings,
                     height: float, color) -> list[Box]:
    """Wall boxes along one line, leaving door openings (centre, width) with lintels above."""
    wall = CLASS_IDS["wall"]
    half = WALL_THICKNESS / 2
    pieces, cursor = [], start
    inside = [(c, w) for c, w in openings if start < c - w / 2 and c + w / 2 < end]
    for center, width in sorted(inside):
        pieces.append((cursor, center - width / 2, 0.0))
        pieces.append((center - width / 2, center + width / 2, DOOR_HEIGHT))  # lintel
        cursor = center + width / 2
    pieces.append((cursor, end, 0.0))
    boxes = []
    for a, b, bottom in pieces:
        if b - a < 1e-6:
            continue
        if along_x:
            low, high = (a, fixed - half, bottom), (b, fixed + half, height)
        else:
            low, high = (fixed - half, a, bottom), (fixed + half, b, height)
        boxes.append(make_box(low, high, wall, color))
    return boxes


def _structure_boxes(rng, rooms, doors, hall_width, height, palette) -> list[Box]:
    """Walls (with openings), floors and ceilings of every room."""
    hall = rooms[0]
    length = hall.high[0]
    wall_color = palette["wall"]
    openings: dict[tuple[bool, float], list] = {}
    for door in doors:
        key = (door.along_x, round(door.center[1] if door.along_x else door.center[0], 6))
        openings.setdefault(key, []).append(
            (door.center[0] if door.along_x else door.center[1], door.width))
    boxes = []
    for y in (0.0, hall_width):  # the hallway's two long walls
        boxes += _wall_line_boxes(y, True, -WALL_THICKNESS / 2, length + WALL_THICKNESS / 2,
                                  openings.get((True, round(y, 6)), []), height, wall_color)
    for room in rooms[1:]:
        outer_y = room.high[1] if room.low[1] >= hall_width else room.low[1]
        boxes += _wall_line_boxes(outer_y, True, room.low[0] - WALL_THICKNESS / 2,
                                  room.high[0] + WALL_THICKNESS / 2, [], height, wall_color)
        for x in (room.low[0], room.high[0]):  # side walls, shared ones drawn twice is harmless
            boxes += _wall_line_boxes(x, False, room.low[1], room.high[1],
                                      openings.get((False, round(x, 6)), []) if 0 < x < length else [],
                                      height, wall_color)
    for x in (0.0, length):  # hallway end walls
        boxes += _wall_line_boxes(x, False, 0.0, hall_width, [], height, wall_color)
    for room in rooms:
        floor_color = palette["floor"] * (0.9 if room.kind == HALLWAY else 1.0)
        boxes.append(make_box((*room.low, -0.05), (*room.high, 0.0), CLASS_IDS["floor"], floor_color, False))
        boxes.append(make_box((*room.low, height), (*room.high, height + 0.05),
                              CLASS_IDS["ceiling"], palette["ceiling"], False))
    return boxes


def generate_house(seed: int) -> House:
    """The house of ``seed`` (any non-negative integer; the same seed gives the same house)."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"house seed must be a non-negative integer, got {seed!r}.")
    rng = np.random.default_rng([int(seed), 0x40053])
    palette = {name: jitter_color(rng, color) for name, color in CLASS_COLORS.items()}
    height = float(rng.uniform(2.6, 3.0))
    chain = _chain_by_adjacency(rng, _choose_room_types(rng))
    rooms, hall_width = _lay_out_rooms(rng, chain)
    doors = _place_doors(rng, rooms, hall_width)
    boxes = _structure_boxes(rng, rooms, doors, hall_width, height, palette)
    boxes += furnishing.door_leaves(rng, doors, rooms, palette)
    furniture, furniture_boxes = furnishing.furnish(rng, rooms, doors, hall_width, height, palette)
    return House(int(seed), height, tuple(rooms), tuple(doors), tuple(furniture),
                 tuple(boxes + furniture_boxes))
