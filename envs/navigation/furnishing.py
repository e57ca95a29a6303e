"""Doors, windows and furniture for a house plan (used by ``house.generate_house``).

Placement is rejection sampling on the floor plan: an object's footprint may not overlap
another's, nor the clearance zone in front of a door (so every doorway stays walkable);
free-standing objects keep ``OPEN_CLEARANCE`` from walls so the agent can walk around them.
Wall-hung panels (pictures, tvs, mirrors, windows) only avoid each other and doorways.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from worldsim.envs.navigation.geometry import Box, make_box
from worldsim.envs.navigation.semantics import CLASS_IDS, ROOM_FURNITURE

WALL_HALF = 0.05
DOOR_CLEARANCE = 1.2  # metres kept free in front of a door, on both sides
OPEN_CLEARANCE = 0.8  # metres between a free-standing object and the walls
PLACEMENT_TRIES = 40

Rect = tuple[float, float, float, float]  # x_low, y_low, x_high, y_high


@dataclasses.dataclass(frozen=True)
class FurnitureItem:
    """A placed object: its instruction name, class, room and bounding box (x, y, z)."""

    name: str
    semantic: int
    room: int
    low: tuple[float, float, float]
    high: tuple[float, float, float]

    @property
    def center(self) -> np.ndarray:
        return (np.asarray(self.low) + np.asarray(self.high)) / 2


def _overlaps(a: Rect, b: Rect, margin: float = 0.0) -> bool:
    return (a[0] < b[2] + margin and b[0] < a[2] + margin
            and a[1] < b[3] + margin and b[1] < a[3] + margin)


def _door_zone(door) -> Rect:
    cx, cy = door.center
    half = door.width / 2 + 0.3
    if door.along_x:
        return (cx - half, cy - DOOR_CLEARANCE, cx + half, cy + DOOR_CLEARANCE)
    return (cx - DOOR_CLEARANCE, cy - half, cx + DOOR_CLEARANCE, cy + half)


def _room_side(room, door) -> float:
    """+1 if the room lies on the positive side of the door's wall line, else -1."""
    if door.along_x:
        return 1.0 if room.center[1] > door.center[1] else -1.0
    return 1.0 if room.center[0] > door.center[0] else -1.0


def door_leaves(rng, doors, rooms, palette) -> list[Box]:
    """An open door leaf at every opening, swung 90° into one of the two rooms."""
    boxes = []
    for door in doors:
        room = rooms[door.rooms[1] if door.rooms[0] == 0 else door.rooms[int(rng.integers(2))]]
        side = _room_side(room, door)
        hinge = door.width / 2 * (1 if rng.random() < 0.5 else -1)
        cx, cy = door.center
        along = sorted([hinge, hinge - np.sign(hinge) * 0.05])
        across = sorted([side * WALL_HALF, side * (WALL_HALF + door.width - 0.05)])
        if door.along_x:
            low, high = (cx + along[0], cy + across[0], 0.0), (cx + along[1], cy + across[1], 2.05)
        else:
            low, high = (cx + across[0], cy + along[0], 0.0), (cx + across[1], cy + along[1], 2.05)
        boxes.append(make_box(low, high, CLASS_IDS["door"], palette["door"]))
    return boxes


def _inner(room) -> Rect:
    return (room.low[0] + WALL_HALF, room.low[1] + WALL_HALF,
            room.high[0] - WALL_HALF, room.high[1] - WALL_HALF)


def _against_wall(rng, inner: Rect, width: float, depth: float) -> tuple[Rect, int]:
    """A footprint of ``width`` along a random wall and ``depth`` into the room; and the wall
    (0 south, 1 north, 2 west, 3 east)."""
    x0, y0, x1, y1 = inner
    wall = int(rng.integers(4))
    if wall < 2:
        x = rng.uniform(x0, max(x0, x1 - width))
        y = y0 if wall == 0 else y1 - depth
        return (x, y, x + width, y + depth), wall
    y = rng.uniform(y0, max(y0, y1 - width))
    x = x0 if wall == 2 else x1 - depth
    return (x, y, x + depth, y + width), wall


def _shape_boxes(shape: str, rect: Rect, z: tuple[float, float], semantic: int, color,
                 wall: int) -> list[Box]:
    x0, y0, x1, y1 = rect
    bottom, top = z
    if shape == "table":
        legs = [make_box((x, y, 0.0), (x + 0.06, y + 0.06, top - 0.05), semantic, color)
                for x in (x0 + 0.03, x1 - 0.09) for y in (y0 + 0.03, y1 - 0.09)]
        return [make_box((x0, y0, top - 0.05), (x1, y1, top), semantic, color, False)] + legs
    if shape == "chair":
        seat = make_box((x0, y0, 0.0), (x1, y1, 0.45), semantic, color)
        back = {0: (x0, y0, x1, y0 + 0.06), 1: (x0, y1 - 0.06, x1, y1),
                2: (x0, y0, x0 + 0.06, y1), 3: (x1 - 0.06, y0, x1, y1)}[wall]
        return [seat, make_box((back[0], back[1], 0.45), (back[2], back[3], top), semantic, color)]
    blocks = shape != "panel"
    return [make_box((x0, y0, bottom), (x1, y1, top), semantic, color, blocks)]


class _RoomFurnisher:
    """Places the objects of one room, remembering what is taken."""

    def __init__(self, rng, room, doors, height, palette):
        self.rng, self.room, self.height, self.palette = rng, room, height, palette
        self.inner = _inner(room)
        zones = [_door_zone(d) for d in doors if room.index in d.rooms]
        self.floor_taken: list[Rect] = list(zones)
        self.wall_taken: list[Rect] = list(zones)
        self.items, self.boxes = [], []

    def _color(self, semantic_name: str):
        return np.clip(self.palette[semantic_name] * self.rng.uniform(0.85, 1.1), 0, 1)

    def add(self, kind, count: int = 1) -> None:
        for _ in range(count):
            for _ in range(PLACEMENT_TRIES):
                if self._try_place(kind):
                    break

    def _try_place(self, kind) -> bool:
        rng = self.rng
        width, depth, height = (rng.uniform(lo, hi) for lo, hi in zip(*kind.size))
        if kind.placement == "wall":
            rect, wall = _against_wall(rng, self.inner, width, depth)
        else:
            wall = int(rng.integers(4))
            if wall >= 2:
                width, depth = depth, width
            x0, y0, x1, y1 = self.inner
            lo_x, hi_x = x0 + OPEN_CLEARANCE, x1 - OPEN_CLEARANCE - width
            lo_y, hi_y = y0 + OPEN_CLEARANCE, y1 - OPEN_CLEARANCE - depth
            if hi_x < lo_x or hi_y < lo_y:
                return False
            x, y = rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)
            rect = (x, y, x + width, y + depth)
        if not self._fits(rect):
            return False
        taken = self.wall_taken if kind.shape == "panel" else self.floor_taken
        if any(_overlaps(rect, other, 0.05) for other in taken):
            return False
        z = (0.0, height)
        if kind.shape == "panel":
            bottom = rng.uniform(0.9, 1.4)
            z = (bottom, min(bottom + height, self.height - 0.15))
        taken.append(rect)
        self._commit(kind.name, kind.semantic, kind.shape, rect, z, wall)
        if kind.name == "dining table":
            self._chairs_around(rect)
        return True

    def _fits(self, rect: Rect) -> bool:
        x0, y0, x1, y1 = self.inner
        return x0 - 1e-9 <= rect[0] and rect[2] <= x1 + 1e-9 and y0 - 1e-9 <= rect[1] and rect[3] <= y1 + 1e-9

    def _commit(self, name, semantic_name, shape, rect, z, wall) -> None:
        semantic = CLASS_IDS[semantic_name]
        boxes = _shape_boxes(shape, rect, z, semantic, self._color(semantic_name), wall)
        self.boxes += boxes
        low = np.min([b.low for b in boxes], axis=0)
        high = np.max([b.high for b in boxes], axis=0)
        self.items.append(FurnitureItem(name, semantic, self.room.index,
                                        tuple(map(float, low)), tuple(map(float, high))))

    def _chairs_around(self, table: Rect) -> None:
        """Up to two chairs on each long side of the dining table, backs away from it."""
        x0, y0, x1, y1 = table
        long_along_x = (x1 - x0) >= (y1 - y0)
        for side in (0, 1):
            for fraction in (0.3, 0.7):
                size = 0.48
                if long_along_x:
                    cx = x0 + fraction * (x1 - x0)
                    y = y0 - 0.05 - size if side == 0 else y1 + 0.05
                    rect, back = (cx - size / 2, y, cx + size / 2, y + size), side
                else:
                    cy = y0 + fraction * (y1 - y0)
                    x = x0 - 0.05 - size if side == 0 else x1 + 0.05
                    rect, back = (x, cy - size / 2, x + size, cy + size / 2), 2 + side
                others = [r for r in self.floor_taken if r != table]
                if self._fits(rect) and not any(_overlaps(rect, o, 0.02) for o in others):
                    self.floor_taken.append(rect)
                    self._commit("chair", "chair", "chair", rect, (0.0, 0.95), back)


def _windows(rng, room, hall_width, furnisher) -> None:
    """One or two windows on the room's exterior wall (the one away from the hallway)."""
    x0, y0, x1, y1 = furnisher.inner
    north = room.low[1] >= hall_width
    for _ in range(int(rng.integers(1, 3))):
        width = rng.uniform(0.8, 1.6)
        for _ in range(PLACEMENT_TRIES):
            x = rng.uniform(x0 + 0.3, max(x0 + 0.3, x1 - 0.3 - width))
            rect = (x, y1 - 0.03, x + width, y1) if north else (x, y0, x + width, y0 + 0.03)
            if x + width <= x1 and not any(_overlaps(rect, o, 0.1) for o in furnisher.wall_taken):
                furnisher.wall_taken.append(rect)
                furnisher.boxes.append(make_box((rect[0], rect[1], 0.9), (rect[2], rect[3], 2.1),
                                                CLASS_IDS["window"], furnisher.palette["window"], False))
                break


def furnish(rng, rooms, doors, hall_width, height, palette):
    """(items, boxes) of every room's windows and furniture."""
    items, boxes = [], []
    for room in rooms:
        furnisher = _RoomFurnisher(rng, room, doors, height, palette)
        if room.index > 0:
            _windows(rng, room, hall_width, furnisher)
        for kind, probability in ROOM_FURNITURE[room.kind]:
            if kind.name == "chair" and room.kind == "dining room":
                continue  # chairs come with the dining table
            if rng.random() < probability:
                furnisher.add(kind)
        items += furnisher.items
        boxes += furnisher.boxes
    return items, boxes
