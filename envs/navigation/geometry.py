"""Axis-aligned boxes, the one primitive houses are built from, and their triangle mesh."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Box:
    """A solid axis-aligned box.

    low, high: opposite corners (x, y, z), metres, world frame (z up, floor at z = 0).
    semantic: mpcat40 class id it renders as.
    color: RGB in [0, 1].
    blocks_walking: whether it occupies floor space (walls and furniture do; wall-hung
      panels, floors and ceilings do not).
    """

    low: tuple[float, float, float]
    high: tuple[float, float, float]
    semantic: int
    color: tuple[float, float, float]
    blocks_walking: bool = True

    def __post_init__(self):
        if not all(h > l for l, h in zip(self.low, self.high)):
            raise ValueError(f"Box needs low < high on every axis, got low={self.low}, high={self.high}.")


def make_box(low, high, semantic: int, color, blocks_walking: bool = True) -> Box:
    """A Box from any sequences of numbers (stored as plain float tuples)."""
    return Box(tuple(float(v) for v in low), tuple(float(v) for v in high), int(semantic),
               tuple(float(v) for v in color), bool(blocks_walking))


# Corner i of a box has x from bit 0, y from bit 1, z from bit 2 (0 = low, 1 = high).
_CORNER_BITS = np.array([[(i >> axis) & 1 for axis in range(3)] for i in range(8)])
# Two triangles per face, wound counter-clockwise seen from outside.
_BOX_TRIANGLES = np.array([
    [0, 2, 1], [1, 2, 3],  # z low
    [4, 5, 6], [5, 7, 6],  # z high
    [0, 1, 4], [1, 5, 4],  # y low
    [2, 6, 3], [3, 6, 7],  # y high
    [0, 4, 2], [2, 4, 6],  # x low
    [1, 3, 5], [3, 7, 5],  # x high
], dtype=np.int64)


@dataclasses.dataclass(frozen=True)
class TriangleMesh:
    """Triangles of many boxes, with the class and colour of every triangle.

    vertices: (V, 3) float32 metres; triangles: (T, 3) uint32 vertex indices;
    semantic: (T,) uint8 class ids; color: (T, 3) float32 RGB in [0, 1].
    """

    vertices: np.ndarray
    triangles: np.ndarray
    semantic: np.ndarray
    color: np.ndarray


def boxes_to_mesh(boxes: list[Box]) -> TriangleMesh:
    """Twelve triangles per box, in the order of ``boxes``."""
    if not boxes:
        raise ValueError("boxes_to_mesh needs at least one box.")
    low = np.array([b.low for b in boxes], dtype=np.float64)
    high = np.array([b.high for b in boxes], dtype=np.float64)
    corners = low[:, None, :] + _CORNER_BITS[None] * (high - low)[:, None, :]
    vertices = corners.reshape(-1, 3).astype(np.float32)
    offsets = 8 * np.arange(len(boxes))[:, None, None]
    triangles = (_BOX_TRIANGLES[None] + offsets).reshape(-1, 3).astype(np.uint32)
    semantic = np.repeat([b.semantic for b in boxes], 12).astype(np.uint8)
    color = np.repeat(np.array([b.color for b in boxes], dtype=np.float32), 12, axis=0)
    return TriangleMesh(vertices, triangles, semantic, color)
