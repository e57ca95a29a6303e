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
  depth buffer costs.

Inputs are placed on the device before timing; every call ends with ``block_until_ready``.
The ratio is the median over repeats of ``reproject_seconds / floor_seconds``.

    .venv/bin/python benchmarks/reproject_speed.py
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

        _time(ours), _time(bare)  # compile
        times, floors = [], []
        for repeat in range(args.repeats):
            pair = (ours, bare) if repeat % 2 == 0 else (bare, ours)
            first, second = _time(pair[0]), _time(pair[1])
            ours_s, floor_s = (first, second) if repeat % 2 == 0 else (second, first)
            times.append(ours_s)
            floors.append(floor_s)
        seen = int(np.asarray(ours()["mask"]).sum())
        rows.append((height, width, statistics.median(times), statistics.median(floors),
                     statistics.median(a / b for a, b in zip(times, floors)), seen))

    print(f"## Memory re-projection ({args.points:,} points from {panoramas} panoramas of house "
          f"{args.house}; {args.repeats} repeats, medians)\n")
    print("| panorama | points | reproject (ms) | floor: scatter-min (ms) | ratio | Mpoints/s | seen pixels |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for height, width, ours_s, floor_s, ratio, seen in rows:
        print(f"| {height}x{width} | {args.points:,} | {ours_s * 1e3:.2f} | {floor_s * 1e3:.2f} | "
              f"{ratio:.2f} | {args.points / ours_s / 1e6:.1f} | {seen / (height * width):.1%} |")
    info.update({"jax": jax.__version__, "jax_device": str(jax.devices()[0]),
                 "load_average_at_end": _machine.load_average()})
    print("\n" + _machine.markdown(info))


if __name__ == "__main__":
    main()
