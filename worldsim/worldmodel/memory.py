"""The world model's memory: a coloured, labelled point cloud in the world frame.

Observations are equirectangular panoramas in the renderer's convention
(``worldsim.envs.navigation.render``): world-aligned (no agent rotation), column j looks along
heading ``1.5π − 2π (j + ½) / W``, row i at polar angle ``π (i + ½) / H`` from +z, depth is the
range along the ray in metres with 0 meaning "no hit", semantics are uint8 mpcat40 ids (0 = void).

``back_project`` turns the valid pixels of a depth panorama into world points, each exactly on
its pixel's centre ray, so re-projecting it from the same position lands on the same pixel.

``PointCloudMemory`` accumulates those points with their colour, class and source ("observed"
for real panoramas, "predicted" for the world model's own outputs), bounded by a voxel grid.

Voxel rule (labels are never averaged): every voxel of side ``voxel_size`` keeps ONE
representative point, with that point's own position, colour and class.

* Latest wins: a point added later replaces the one already in its voxel; within one ``add``
  call, pixels count in row-major order (a later pixel is "later").
* Observed points are never replaced by predicted ones: the winner of a voxel is the latest
  observed point if it has any, else the latest predicted point.
* ``voxel_size=None`` keeps every point (no reduction).
* When more than ``max_points`` voxels are occupied, the points that would lose a voxel
  contest first are dropped: predicted before observed, older before newer.

Points are stored oldest first (in the order they were added), so the order, and with it the
tie-breaking of the re-projection's depth buffer, is deterministic.
"""

from __future__ import annotations

import os

import numpy as np
import open3d as o3d

from worldsim.envs.navigation.render import equirectangular_directions

SOURCES = ("observed", "predicted")  # the codes in ``PointCloudMemory.sources`` are indices
OBSERVED, PREDICTED = 0, 1
DEFAULT_MAX_RANGE = 10.0  # metres; Pathdreamer's depth scale
DEFAULT_MAX_POINTS = 2_000_000
MAX_PLAUSIBLE_RANGE = 100.0  # metres; a larger finite depth means the units are wrong

_KEY_BITS = 21  # per axis in the packed voxel key: ±2**20 voxels (±52 km at 5 cm)
_KEY_OFFSET = 1 << (_KEY_BITS - 1)


def _check_observation(depth: np.ndarray, position) -> tuple[np.ndarray, np.ndarray]:
    depth = np.asarray(depth)
    if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.floating):
        raise ValueError(f"depth must be an (H, W) float array of ranges in metres, "
                         f"got shape {depth.shape} and dtype {depth.dtype}.")
    position = np.asarray(position, np.float64)
    if position.shape != (3,) or not np.all(np.isfinite(position)):
        raise ValueError(f"position must be 3 finite numbers (x, y, z) in metres, got {position!r}.")
    finite = depth[np.isfinite(depth)]
    if finite.size and finite.max() > MAX_PLAUSIBLE_RANGE:
        raise ValueError(f"depth must be a range in metres, but its largest value is {finite.max():g}, "
                         f"beyond {MAX_PLAUSIBLE_RANGE:g} m (millimetres? divide by 1000).")
    return depth, position


def valid_pixels(depth: np.ndarray, max_range: float = DEFAULT_MAX_RANGE) -> np.ndarray:
    """(H, W) bool: pixels with a usable range, ``0 < depth < max_range`` (NaN is invalid)."""
    depth = np.asarray(depth)
    with np.errstate(invalid="ignore"):
        return (depth > 0) & (depth < max_range)


def back_project(depth: np.ndarray, position, max_range: float = DEFAULT_MAX_RANGE) -> np.ndarray:
    """World points of the valid pixels of an equirectangular depth panorama.

    depth: (H, W) float, range along each pixel's centre ray in metres (0 = no hit).
    position: (3,) camera position (x, y, z) in metres, world frame.
    Returns (N, 3) float32 points, N = number of pixels with ``0 < depth < max_range``, in
    row-major pixel order.
    """
    depth, position = _check_observation(depth, position)
    height, width = depth.shape
    valid = valid_pixels(depth, max_range)
    directions = equirectangular_directions(height, width)[valid].astype(np.float64)
    points = position + directions * depth[valid].astype(np.float64)[:, None]
    return points.astype(np.float32)


def _source_code(source: str) -> int:
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}.")
    return SOURCES.index(source)


class PointCloudMemory:
    """World-frame points with colour (uint8 RGB), class (uint8) and source, one per voxel.

    voxel_size: voxel side in metres (> 0), or None to keep every point. The default 0.01 m
      keeps about 92 % of a 128×256 panorama's pixels when re-projected at its own pose (0.05 m:
      52 %; each point fills one pixel), see benchmarks/reproject_speed.py.
    max_points: most points kept (> 0), or None for no bound.
    max_range: pixels with a range at or beyond it (metres) are not added.
    See the module docstring for the voxel rule.
    """

    def __init__(self, voxel_size: float | None = 0.01, max_points: int | None = DEFAULT_MAX_POINTS,
                 max_range: float = DEFAULT_MAX_RANGE):
        if voxel_size is not None and not (isinstance(voxel_size, (int, float, np.number))
                                           and np.isfinite(voxel_size) and voxel_size > 0):
            raise ValueError(f"voxel_size must be a positive number of metres or None, got {voxel_size!r}.")
        if max_points is not None and not (isinstance(max_points, (int, np.integer)) and max_points > 0):
            raise ValueError(f"max_points must be a positive integer or None, got {max_points!r}.")
        if not (isinstance(max_range, (int, float, np.number)) and max_range > 0):
            raise ValueError(f"max_range must be a positive number of metres, got {max_range!r}.")
        self.voxel_size = None if voxel_size is None else float(voxel_size)
        self.max_points = None if max_points is None else int(max_points)
        self.max_range = float(max_range)
        self._points = np.zeros((0, 3), np.float32)
        self._colors = np.zeros((0, 3), np.uint8)
        self._labels = np.zeros((0,), np.uint8)
        self._sources = np.zeros((0,), np.uint8)

    # -- read access --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._points)

    def reproject(self, position, height: int, width: int, capacity: int | None = None,
                  occlusion_window: int = 0, occlusion_tolerance: float = 0.1) -> dict[str, np.ndarray]:
        """Guidance panorama of the memory seen from ``position`` (3,) metres: rgb (H, W, 3)
        uint8, semantic (H, W) uint8, depth (H, W) float32 metres (0 = unseen), mask (H, W) bool;
        see ``reproject.reproject_equirectangular``. The one place guidance is built (training
        examples, evaluation and the planner all come here).

        capacity: pad the memory to this many points (one compilation for every call of the
        same capacity; ignored when smaller than the memory). occlusion_window,
        occlusion_tolerance: ``reproject.occlusion_filter`` (window ≤ 1: off, the default).
        """
        from worldsim.worldmodel.reproject import occlusion_filter, pad_points, reproject_equirectangular

        if not len(self):
            raise ValueError("the memory is empty: add an observation before re-projecting it.")
        _check_observation(np.zeros((1, 1), np.float32), position)
        if capacity is not None and capacity < len(self):
            capacity = None
        padded = pad_points(self.points, self.colors, self.labels, capacity)
        guidance = reproject_equirectangular(padded["points"], padded["colors"], padded["labels"],
                                             np.asarray(position, np.float32), height, width,
                                             max_range=self.max_range, valid=padded["valid"])
        guidance = occlusion_filter(guidance, occlusion_window, occlusion_tolerance)
        return {key: np.asarray(value) for key, value in guidance.items()}

    @property
    def points(self) -> np.ndarray:
        """(N, 3) float32 world positions, metres (read-only view)."""
        return self._readonly(self._points)

    @property
    def colors(self) -> np.ndarray:
        """(N, 3) uint8 RGB (read-only view)."""
        return self._readonly(self._colors)

    @property
    def labels(self) -> np.ndarray:
        """(N,) uint8 mpcat40 class ids (read-only view)."""
        return self._readonly(self._labels)

    @property
    def sources(self) -> np.ndarray:
        """(N,) uint8 source codes: index into ``SOURCES`` (0 observed, 1 predicted)."""
        return self._readonly(self._sources)

    @staticmethod
    def _readonly(array: np.ndarray) -> np.ndarray:
        view = array.view()
        view.setflags(write=False)
        return view

    # -- writing ------------------------------------------------------------------------------
    def add(self, rgb: np.ndarray, semantic: np.ndarray, depth: np.ndarray, position,
            mask: np.ndarray | None = None, source: str = "observed") -> int:
        """Add the valid pixels of one panorama; returns how many points were offered.

        rgb: (H, W, 3) uint8; semantic: (H, W) integer class ids in [0, 255];
        depth: (H, W) float range in metres (0 = no hit); position: (3,) camera (x, y, z) m;
        mask: optional (H, W) bool, True where the pixel may be added (e.g. only the pixels a
        prediction filled in); source: "observed" or "predicted".
        """
        code = _source_code(source)
        depth, position = _check_observation(depth, position)
        rgb, semantic = np.asarray(rgb), np.asarray(semantic)
        if rgb.shape != depth.shape + (3,) or rgb.dtype != np.uint8:
            raise ValueError(f"rgb must be a uint8 array of shape {depth.shape + (3,)} (depth's "
                             f"H, W plus 3 channels), got shape {rgb.shape} and dtype {rgb.dtype}.")
        if semantic.shape != depth.shape or not np.issubdtype(semantic.dtype, np.integer):
            raise ValueError(f"semantic must be an integer array of shape {depth.shape} (depth's), "
                             f"got shape {semantic.shape} and dtype {semantic.dtype}.")
        if semantic.size and (semantic.min() < 0 or semantic.max() > 255):
            raise ValueError(f"semantic class ids must lie in [0, 255], got values in "
                             f"[{semantic.min()}, {semantic.max()}].")
        valid = valid_pixels(depth, self.max_range)
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != depth.shape or mask.dtype != np.bool_:
                raise ValueError(f"mask must be a bool array of shape {depth.shape} (depth's), "
                                 f"got shape {mask.shape} and dtype {mask.dtype}.")
            valid &= mask
        points = back_project(np.where(valid, depth, 0).astype(depth.dtype), position, self.max_range)
        self._insert(points, rgb[valid], semantic[valid].astype(np.uint8),
                     np.full(len(points), code, np.uint8))
        return len(points)

    def _insert(self, points, colors, labels, sources) -> None:
        """Append new points (all later than the stored ones) and apply the voxel rule."""
        points = np.concatenate([self._points, points.astype(np.float32)])
        colors = np.concatenate([self._colors, colors])
        labels = np.concatenate([self._labels, labels])
        sources = np.concatenate([self._sources, sources])
        # Rank: observed beats predicted, then later (larger index) beats earlier.
        rank = (sources == OBSERVED).astype(np.int64) * len(points) + np.arange(len(points))
        if self.voxel_size is None:
            keep = np.arange(len(points))
        else:
            keys = self._voxel_keys(points)
            order = np.lexsort((rank, keys))  # by voxel, best last within a voxel
            last = np.ones(len(order), bool)
            last[:-1] = keys[order[1:]] != keys[order[:-1]]
            keep = np.sort(order[last])
        if self.max_points is not None and len(keep) > self.max_points:
            best = np.argsort(rank[keep], kind="stable")[-self.max_points:]
            keep = keep[np.sort(best)]
        self._points, self._colors = points[keep], colors[keep]
        self._labels, self._sources = labels[keep], sources[keep]

    def _voxel_keys(self, points: np.ndarray) -> np.ndarray:
        """(N,) int64: the integer voxel coordinates of each point packed into one number."""
        cells = np.floor(points.astype(np.float64) / self.voxel_size).astype(np.int64) + _KEY_OFFSET
        if cells.size and (cells.min() < 0 or cells.max() >= 1 << _KEY_BITS):
            raise ValueError(f"points span more than ±{_KEY_OFFSET} voxels of {self.voxel_size} m "
                             f"from the origin; use a larger voxel_size.")
        return (cells[:, 0] << (2 * _KEY_BITS)) | (cells[:, 1] << _KEY_BITS) | cells[:, 2]

    def clear(self) -> None:
        """Forget every point (the settings stay)."""
        self.__init__(self.voxel_size, self.max_points, self.max_range)

    # -- files --------------------------------------------------------------------------------
    def to_ply(self, path: str | os.PathLike) -> None:
        """Write a binary PLY via Open3D's tensor point cloud: float32 positions, uint8 colours,
        int32 attributes "labels" and "sources". Written to a temporary name, then renamed."""
        if not len(self):
            raise ValueError("the memory is empty; Open3D cannot write a PLY with 0 points.")
        cloud = o3d.t.geometry.PointCloud()
        cloud.point.positions = o3d.core.Tensor(self._points)
        cloud.point.colors = o3d.core.Tensor(self._colors)
        cloud.point["labels"] = o3d.core.Tensor(self._labels.astype(np.int32)[:, None])
        cloud.point["sources"] = o3d.core.Tensor(self._sources.astype(np.int32)[:, None])
        path = os.fspath(path)
        if not path.endswith(".ply"):
            raise ValueError(f"path must end with .ply, got {path!r}.")
        temporary = f"{path[:-4]}.tmp{os.getpid()}.ply"  # Open3D picks the format by extension
        try:
            if not o3d.t.io.write_point_cloud(temporary, cloud, write_ascii=False):
                raise OSError(f"Open3D could not write {temporary!r}.")
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)

    @classmethod
    def from_ply(cls, path: str | os.PathLike, voxel_size: float | None = 0.01,
                 max_points: int | None = DEFAULT_MAX_POINTS,
                 max_range: float = DEFAULT_MAX_RANGE) -> "PointCloudMemory":
        """Read a PLY written by ``to_ply``; points keep their file order (oldest first)."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no point-cloud file at {path!r}.")
        cloud = o3d.t.io.read_point_cloud(path)
        missing = [name for name in ("positions", "colors", "labels", "sources") if name not in cloud.point]
        if missing:
            raise ValueError(f"{path!r} lacks the point attributes {missing}; expected a file written "
                             f"by PointCloudMemory.to_ply.")
        labels = cloud.point["labels"].numpy().reshape(-1)
        sources = cloud.point["sources"].numpy().reshape(-1)
        colors = cloud.point.colors.numpy()
        if colors.dtype != np.uint8 or labels.min() < 0 or labels.max() > 255 or sources.min() < 0 \
                or sources.max() >= len(SOURCES):
            raise ValueError(f"{path!r} has colours that are not uint8, labels outside [0, 255] or "
                             f"source codes outside [0, {len(SOURCES) - 1}].")
        memory = cls(voxel_size, max_points, max_range)
        memory._insert(cloud.point.positions.numpy().astype(np.float32), colors,
                       labels.astype(np.uint8), sources.astype(np.uint8))
        return memory
