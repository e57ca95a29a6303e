"""Re-projection of the point-cloud memory into guidance panoramas, next to the bare scatter it
cannot do without.

The memory: ``--points`` N world points back-projected from 256x512 panoramas of house
``--house`` (node after node, no voxel reduction, the first N kept), queried from the house's
first viewpoint. For each panorama size (default 128x256 and 512x1024), after one warm-up call
(compilation), ``--repeats`` rounds each time, in alternating order:

* ``reproject``: ``reproject_equirectangular(points, colors, labels, position, H, W)`` — pixel
  of every point, two-pass single-winner depth buffer, gathers of RGB, class and depth;
* the *floor*: ``jnp.full(H*W, inf).at[idx].min(range, mode="drop")`` on the same N points,
  their pixel indices and ranges computed in advance (untimed): one scatter-min, the least a
  depth buffer costs;
* the *NumPy reference*: ``numpy_reproject``, the same single-winner re-projection written
  plainly in NumPy (float32 ranges, ``np.arctan2`` angles, one ``np.lexsort``, fancy indexing).

Before timing, ``check_reference`` asserts that both give the same panorama up to float32
rounding: every pixel has the same mask, RGB, class and depth (the winner's range, to 2 ulp:
XLA fuses the range's multiply-adds, NumPy does not), except pixels that some point within
4e-6 rad of a pixel edge may land in (the JAX atan2 is a polynomial, |error| < 5e-7 rad), and
pixels where JAX shows another point whose range ties the nearest to 2 ulp (verified point by
point). How many pixels differ, and why, is printed under the table. At 256x512 the query's own
panorama puts its points on pixel centres; at 512x1024 the same points lie exactly on pixel
edges, so there many pixels differ, all at edges.

Inputs are placed on the device before timing; every call ends with ``block_until_ready``.
The ratio is the median over repeats of ``reproject_seconds / floor_seconds``; the speed-up is
the median of ``numpy_seconds / reproject_seconds``.

    .venv/bin/python benchmarks/reproject_speed.py
    .venv/bin/python benchmarks/reproject_speed.py --points 1000000 --sizes 256x512 --repeats 10
    .venv/bin/python benchmarks/reproject_speed.py --points 100000 --sizes 128x256 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _machine  # noqa: E402

from worldsim.envs.navigation.scene import load_scene  # noqa: E402
from worldsim.worldmodel.memory import back_project, valid_pixels  # noqa: E402
from worldsim.worldmodel.reproject import reproject_equirectangular  # noqa: E402


def _size(text: str) -> tuple[int, int]:
    height, _, width = text.partition("x")
    return int(height), int(width)


def house_memory(seed: int, points: int) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """(memory arrays with exactly ``points`` rows, query position, panoramas used)."""
    scene = load_scene(seed)
    nodes = sorted(scene.graph.nodes)
    parts, total, used = [], 0, 0
    while total < points:
        node = nodes[used % len(nodes)]
        pano = scene.panorama(node, 256, 512)
        valid = valid_pixels(pano["depth"])
        parts.append((back_project(pano["depth"], scene.position(node)), pano["rgb"][valid],
                      pano["semantic"][valid]))
        total += valid.sum()
        used += 1
    memory = {name: np.concatenate([part[i] for part in parts])[:points]
              for i, name in enumerate(("points", "colors", "labels"))}
    return memory, scene.position(nodes[0]), used


def floor_inputs(points: np.ndarray, position: np.ndarray, height: int, width: int):
    """Flat pixel index (H·W where dropped) and range of every point, as the projector does."""
    offsets = points.astype(np.float64) - position
    distance = np.linalg.norm(offsets, axis=1)
    heading = np.mod(1.5 * np.pi - np.arctan2(offsets[:, 1], offsets[:, 0]), 2 * np.pi)
    column = np.floor(heading / (2 * np.pi) * width).astype(np.int64) % width
    polar = np.arctan2(np.hypot(offsets[:, 0], offsets[:, 1]), offsets[:, 2])
    row = np.minimum(np.floor(polar / np.pi * height).astype(np.int64), height - 1)
    ok = (distance > 0) & (distance < 10.0)
    index = np.where(ok, row * width + column, height * width).astype(np.int32)
    return index, distance.astype(np.float32)


def point_pixels(points: np.ndarray, position: np.ndarray, height: int, width: int,
                 max_range: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """(pixel, range) of every point in plain float32 NumPy: flat pixel index (N,) int64, −1
    where the point is dropped (at the camera or at/beyond ``max_range`` metres), and range
    (N,) float32 in metres. points: (N, 3) float32 metres; position: (3,) metres."""
    offsets = points.astype(np.float32) - position.astype(np.float32)
    x, y, z = offsets[:, 0], offsets[:, 1], offsets[:, 2]
    distance = np.sqrt(x * x + y * y + z * z)
    heading = np.mod(np.float32(1.5 * np.pi) - np.arctan2(y, x), np.float32(2 * np.pi))
    column = np.floor(heading * np.float32(width / (2 * np.pi))).astype(np.int64) % width
    polar = np.arctan2(np.sqrt(x * x + y * y), z)  # from +z, in [0, π]
    row = np.minimum(np.floor(polar * np.float32(height / np.pi)).astype(np.int64), height - 1)
    ok = (distance > 0) & (distance < max_range)
    return np.where(ok, row * width + column, -1), distance


def numpy_reproject(points: np.ndarray, colors: np.ndarray, labels: np.ndarray, position: np.ndarray,
                    height: int, width: int, max_range: float = 10.0) -> dict[str, np.ndarray]:
    """Plain NumPy reference of ``reproject_equirectangular``: each pixel shows its nearest
    point; among points at exactly the same range, the one with the smallest index.

    points: (N, 3) float32 world positions, metres; colors: (N, 3) uint8; labels: (N,) uint8;
    position: (3,) camera, metres. Returns rgb (H, W, 3) uint8, semantic (H, W) uint8, depth
    (H, W) float32 range in metres, mask (H, W) bool (0 / False where no point lands).
    """
    pixel, distance = point_pixels(points, position, height, width, max_range)
    ids = np.flatnonzero(pixel >= 0)
    # Sort by pixel, then range; lexsort is stable, so equal ranges keep the smaller index first.
    order = ids[np.lexsort((distance[ids], pixel[ids]))]
    first = np.ones(len(order), bool)
    first[1:] = pixel[order[1:]] != pixel[order[:-1]]
    winner = order[first]
    where = pixel[winner]
    out = {"rgb": np.zeros((height * width, 3), np.uint8), "semantic": np.zeros(height * width, np.uint8),
           "depth": np.zeros(height * width, np.float32), "mask": np.zeros(height * width, bool)}
    out["rgb"][where], out["semantic"][where] = colors[winner], labels[winner]
    out["depth"][where], out["mask"][where] = distance[winner], True
    return {key: value.reshape((height, width) + value.shape[1:]) for key, value in out.items()}


def edge_pixels(points: np.ndarray, position: np.ndarray, height: int, width: int,
                max_range: float = 10.0, tolerance: float = 4e-6) -> np.ndarray:
    """(H·W,) bool: the pixels on either side of an edge that some point lies within
    ``tolerance`` rad of (heading or polar angle, float64 angles of the float32 offsets)."""
    offsets = (points.astype(np.float32) - position.astype(np.float32)).astype(np.float64)
    x, y, z = offsets[:, 0], offsets[:, 1], offsets[:, 2]
    distance = np.sqrt(x * x + y * y + z * z)
    heading = np.mod(1.5 * np.pi - np.arctan2(y, x), 2 * np.pi)
    polar = np.arctan2(np.hypot(x, y), z)
    candidates = []
    for dh in (-tolerance, tolerance):
        for dp in (-tolerance, tolerance):
            column = np.floor((heading + dh) * width / (2 * np.pi)).astype(np.int64) % width
            row = np.clip(np.floor((polar + dp) * height / np.pi).astype(np.int64), 0, height - 1)
            candidates.append(row * width + column)
    candidates = np.stack(candidates)
    near = (distance > 0) & (distance < max_range) & np.any(candidates != candidates[0], axis=0)
    edge = np.zeros(height * width, bool)
    edge[candidates[:, near].ravel()] = True
    return edge


def _ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a − b| in float32 ulp, elementwise (both non-negative float32)."""
    return np.abs(a.astype(np.float32).view(np.int32).astype(np.int64)
                  - b.astype(np.float32).view(np.int32).astype(np.int64))


def check_reference(ours: dict, reference: dict, memory: dict, position: np.ndarray) -> dict[str, int]:
    """Asserts that the JAX panorama ``ours`` equals the NumPy ``reference`` up to float32
    rounding (see the module docstring). memory: points, colors, labels of the N points.
    Returns pixel counts: ``differ`` (pixels that differ at all), ``edge`` (of those, next to a
    pixel edge), ``tie`` (the others, each a near-tie checked here) and ``ulp`` (pixels whose
    depths differ by 1–2 ulp)."""
    height, width = reference["mask"].shape
    ours = {key: np.asarray(value).reshape(height * width, -1) for key, value in ours.items()}
    reference = {key: value.reshape(height * width, -1) for key, value in reference.items()}
    ulps = _ulps(ours["depth"], reference["depth"])[:, 0]
    differ = (ulps > 2) | np.any(np.concatenate(
        [ours[key] != reference[key] for key in ("mask", "rgb", "semantic")], axis=1), axis=1)
    edge = edge_pixels(memory["points"], position, height, width)
    others = np.flatnonzero(differ & ~edge)
    assert np.all(ulps[others] <= 2) and np.all(ours["mask"][others] == reference["mask"][others]), (
        f"{len(others)} pixels away from pixel edges differ by more than a near-tie")
    pixel, distance = point_pixels(memory["points"], position, height, width)
    for p in others:  # JAX shows another point at (to 2 ulp) the nearest range: find it
        tied = (pixel == p) & (_ulps(distance, reference["depth"][p]) <= 2)
        assert np.any(np.all(memory["colors"][tied] == ours["rgb"][p], axis=1)
                      & (memory["labels"][tied] == ours["semantic"][p, 0])), f"pixel {p} differs unexplained"
    return {"differ": int(differ.sum()), "edge": int((differ & edge).sum()), "tie": len(others),
            "ulp": int(np.sum((ulps > 0) & (ulps <= 2)))}


def _time(fn) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=_size, default=[(128, 256), (512, 1024)],
                        help="panorama sizes HxW (default 128x256 512x1024)")
    parser.add_argument("--points", type=int, default=500_000, help="memory size N")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--house", type=int, default=100_000, help="house seed of the memory")
    args = parser.parse_args(argv)

    info = _machine.describe()
    memory, position, panoramas = house_memory(args.house, args.points)
    device = {name: jax.device_put(value) for name, value in memory.items()}
    query = jax.device_put(position.astype(np.float32))
    rows = []
    for height, width in args.sizes:
        index, distance = floor_inputs(memory["points"], position, height, width)
        index, distance = jax.device_put(index), jax.device_put(distance)
        floor = jax.jit(lambda i, r, n=height * width: jnp.full(n, jnp.inf, jnp.float32).at[i].min(
            r, mode="drop"))

        def ours(h=height, w=width):
            return reproject_equirectangular(device["points"], device["colors"], device["labels"],
                                             query, h, w)

        def bare():
            return floor(index, distance)

        def plain(h=height, w=width):
            return numpy_reproject(memory["points"], memory["colors"], memory["labels"], position, h, w)

        _time(bare)  # compile
        checked = check_reference(ours(), plain(), memory, position)  # also compiles ``ours``
        times, floors, numpys = [], [], []
        for repeat in range(args.repeats):
            pair = (ours, bare) if repeat % 2 == 0 else (bare, ours)
            first, second = _time(pair[0]), _time(pair[1])
            ours_s, floor_s = (first, second) if repeat % 2 == 0 else (second, first)
            times.append(ours_s)
            floors.append(floor_s)
            numpys.append(_time(plain))
        seen = int(np.asarray(ours()["mask"]).sum())
        rows.append((height, width, statistics.median(times), statistics.median(floors),
                     statistics.median(a / b for a, b in zip(times, floors)), seen,
                     statistics.median(numpys), statistics.median(n / a for n, a in zip(numpys, times)),
                     checked))

    print(f"## Memory re-projection ({args.points:,} points from {panoramas} panoramas of house "
          f"{args.house}; {args.repeats} repeats, medians)\n")
    print("| panorama | points | reproject (ms) | floor: scatter-min (ms) | ratio | Mpoints/s | "
          "seen pixels | NumPy reference (ms) | speed-up vs NumPy |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for height, width, ours_s, floor_s, ratio, seen, numpy_s, speedup, _ in rows:
        print(f"| {height}x{width} | {args.points:,} | {ours_s * 1e3:.2f} | {floor_s * 1e3:.2f} | "
              f"{ratio:.2f} | {args.points / ours_s / 1e6:.1f} | {seen / (height * width):.1%} | "
              f"{numpy_s * 1e3:.1f} | {speedup:.1f}× |")
    print("\nNumPy reference checked equal to reproject up to float32 rounding; pixels that differ "
          "(of them next to a pixel edge / near-ties of range) and depths 1–2 ulp apart: "
          + "; ".join(f"{h}x{w}: {c['differ']:,} ({c['edge']:,} / {c['tie']:,}), {c['ulp']:,}"
                      for h, w, *_, c in rows) + ".")
    info.update({"jax": jax.__version__, "jax_device": str(jax.devices()[0]),
                 "load_average_at_end": _machine.load_average()})
    print("\n" + _machine.markdown(info))


if __name__ == "__main__":
    main()
