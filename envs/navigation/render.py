"""Ray-cast rendering of houses with Open3D's ``RaycastingScene``.

Panoramas are equirectangular in the Pathdreamer / R2R canonical frame (world-aligned, no agent
rotation): column j looks along heading ``1.5π − 2π (j + ½) / W`` (the centre column looks
along +y, the ¾-width column along +x), row i at polar angle ``π (i + ½) / H`` from +z.

Every render returns the triple a world model needs:

* ``rgb``: (H, W, 3) uint8 — the hit triangle's class colour (with the house's variation),
  Lambert-shaded from its normal: ``AMBIENT + (1 − AMBIENT) |n · light|``. Triangles are flat,
  so the shaded colour is one per triangle, computed once per house and looked up per hit;
* ``depth``: (H, W) float32 — range along the ray in metres (not planar z), 0 where the ray
  escapes (never happens inside a closed house);
* ``semantic``: (H, W) uint8 — mpcat40 class id of the hit, 0 (void) on a miss.
"""

from __future__ import annotations

import functools

import numpy as np
import open3d as o3d

from worldsim.envs.navigation.geometry import Box, boxes_to_mesh

CAMERA_HEIGHT = 1.5  # metres above the floor, as in R2R
AMBIENT = 0.45
LIGHT_DIRECTION = np.array([0.35, 0.55, 0.76]) / np.linalg.norm([0.35, 0.55, 0.76])
MIN_SIZE, MAX_SIZE = 4, 4096


def _check_size(height: int, width: int) -> None:
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, (int, np.integer)) or not MIN_SIZE <= value <= MAX_SIZE:
            raise ValueError(f"image {name} must be an integer in [{MIN_SIZE}, {MAX_SIZE}], got {value!r}.")


@functools.lru_cache(maxsize=8)
def equirectangular_directions(height: int, width: int) -> np.ndarray:
    """Unit ray directions of an equirectangular panorama, (H, W, 3) float32, world frame."""
    _check_size(height, width)
    heading = 1.5 * np.pi - 2 * np.pi * (np.arange(width) + 0.5) / width
    polar = np.pi * (np.arange(height) + 0.5) / height
    sin_polar = np.sin(polar)[:, None]
    directions = np.stack([
        sin_polar * np.cos(heading)[None, :],
        sin_polar * np.sin(heading)[None, :],
        np.repeat(np.cos(polar)[:, None], width, axis=1)], axis=-1)
    directions = directions.astype(np.float32)
    directions.setflags(write=False)
    return directions


def pinhole_directions(heading: float, height: int, width: int, fov_degrees: float = 90.0,
                       elevation: float = 0.0) -> np.ndarray:
    """Unit ray directions of a pinhole camera, (H, W, 3) float32.

    heading: radians, world frame (0 looks along +x, π/2 along +y); elevation: radians above
    the horizon; fov_degrees: horizontal field of view, in (0, 180).
    """
    _check_size(height, width)
    if not 0.0 < fov_degrees < 180.0:
        raise ValueError(f"fov_degrees must be in (0, 180), got {fov_degrees!r}.")
    focal = (width / 2) / np.tan(np.radians(fov_degrees) / 2)
    u = (np.arange(width) + 0.5 - width / 2) / focal
    v = (np.arange(height) + 0.5 - height / 2) / focal
    forward = np.array([np.cos(heading) * np.cos(elevation), np.sin(heading) * np.cos(elevation),
                        np.sin(elevation)])
    right = np.array([np.sin(heading), -np.cos(heading), 0.0])
    up = np.cross(right, forward)
    directions = (forward[None, None] + u[None, :, None] * right[None, None]
                  - v[:, None, None] * up[None, None])
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    return directions.astype(np.float32)


def _shaded_colors(mesh) -> np.ndarray:
    """(T, 3) uint8 Lambert-shaded colour of every triangle (the value a hit on it renders)."""
    corners = mesh.vertices[mesh.triangles.astype(np.int64)]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    shade = AMBIENT + (1 - AMBIENT) * np.abs(normals @ LIGHT_DIRECTION.astype(np.float32))
    return (mesh.color * shade[:, None] * 255 + 0.5).astype(np.uint8)


class HouseRenderer:
    """Renders one house (or any list of boxes) from arbitrary camera positions."""

    def __init__(self, boxes: tuple[Box, ...] | list[Box]):
        mesh = boxes_to_mesh(list(boxes))
        self.scene = o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(o3d.core.Tensor(mesh.vertices), o3d.core.Tensor(mesh.triangles))
        # Per-triangle lookup tables, with one extra row at the end for rays that hit nothing
        # (primitive id INVALID_ID): class ids, and shaded uint8 colours.
        self._semantic = np.concatenate([mesh.semantic, [0]]).astype(np.uint8)
        self._rgb = np.concatenate([_shaded_colors(mesh), np.zeros((1, 3), np.uint8)])
        self._miss_index = len(mesh.semantic)

    def _cast_rays(self, origins, directions: np.ndarray):
        """Open3D's hits of the rays from ``origins`` ((3,) or (N, 3)) along ``directions`` (N, 3)."""
        rays = np.empty((len(directions), 6), np.float32)  # filled in place: no concatenate
        rays[:, :3] = origins
        rays[:, 3:] = directions
        return self.scene.cast_rays(o3d.core.Tensor.from_numpy(rays), nthreads=0)

    def cast(self, origins: np.ndarray, directions: np.ndarray) -> dict[str, np.ndarray]:
        """Raw hits of rays, (N, 3) each: ``t_hit`` (N,) in units of the direction's length,
        ``primitive_ids`` (N,) and ``normals`` (N, 3)."""
        hits = self._cast_rays(origins, directions)
        return {"t_hit": hits["t_hit"].numpy(), "primitive_ids": hits["primitive_ids"].numpy(),
                "normals": hits["primitive_normals"].numpy()}

    def render_rays(self, origin, directions: np.ndarray) -> dict[str, np.ndarray]:
        """RGB, range depth and classes for unit ``directions`` (H, W, 3) from one ``origin``."""
        shape = directions.shape[:2]
        hits = self._cast_rays(np.asarray(origin, np.float32), directions.reshape(-1, 3))
        # A miss (INVALID_ID, the largest uint32) becomes the tables' last row.
        ids = np.minimum(hits["primitive_ids"].numpy(), self._miss_index)
        depth = np.where(ids == self._miss_index, np.float32(0.0), hits["t_hit"].numpy())
        return {
            # np.take: several times faster than fancy indexing for row gathers.
            "rgb": np.take(self._rgb, ids, axis=0).reshape(*shape, 3),
            "depth": depth.reshape(shape),
            "semantic": np.take(self._semantic, ids).reshape(shape),
        }

    def panorama(self, position, height: int = 128, width: int = 256) -> dict[str, np.ndarray]:
        """Equirectangular panorama at ``position`` = (x, y, z) metres (z is the camera height
        above the floor, usually ``CAMERA_HEIGHT``)."""
        return self.render_rays(position, equirectangular_directions(height, width))

    def pinhole(self, position, heading: float, height: int = 96, width: int = 128,
                fov_degrees: float = 90.0, elevation: float = 0.0) -> dict[str, np.ndarray]:
        """Pinhole image at ``position`` looking along ``heading`` (depth is range, as above)."""
        return self.render_rays(position, pinhole_directions(heading, height, width, fov_degrees, elevation))

    def clear_lines(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """(N,) bool: whether nothing lies between each start and end point, (N, 3) each."""
        starts = np.asarray(starts, np.float32)
        hits = self.cast(starts, np.asarray(ends, np.float32) - starts)
        return hits["t_hit"] >= 1.0
