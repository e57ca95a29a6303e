"""Navigation panoramas rendered per second, next to the bare ray casting they cannot do without;
and procedural houses generated per second.

Panoramas. For each size (default 128x256 and 512x1024) and at ``--viewpoints`` viewpoints of
each of ``--houses`` (scenes loaded untimed), one repeat times, viewpoint by viewpoint in
alternating order:

* ``panorama``: ``HouseRenderer.panorama(position, H, W)`` — RGB + range depth + semantic
  classes, everything the env's observation needs from the renderer;
* the *floor*: ``renderer.scene.cast_rays(rays, nthreads=0)`` (Open3D's ``RaycastingScene``,
  the call ``panorama`` makes) on the same rays, the ray tensor built in advance, untimed.

The overhead is the median over repeats of ``panorama_seconds / floor_seconds − 1`` (target:
below 50 %). Wall-clock (``time.perf_counter``) and process CPU time (``time.process_time``, all
threads: Open3D casts on every core) are both recorded; rates are wall-clock.

Houses. Each of ``--generate`` seeds (from 10 000, never cached) is timed through
``generate_house`` alone, ``generate_house`` + ``build_navigation_graph`` (which builds the
house's ``HouseRenderer`` for its line-of-sight tests) and the uncached ``load_scene`` (the
same plus the all-pairs graph distances: what an env reset pays for a house it has not seen).

    .venv/bin/python benchmarks/nav_render.py
    .venv/bin/python benchmarks/nav_render.py --sizes 128x256 --repeats 3 --generate 5
    .venv/bin/python benchmarks/nav_render.py --profile 512x1024   # cProfile of render_rays
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.metadata
import io
import json
import os
import pstats
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import open3d as o3d

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _machine  # noqa: E402

from worldsim.envs.navigation.graph import build_navigation_graph  # noqa: E402
from worldsim.envs.navigation.house import generate_house  # noqa: E402
from worldsim.envs.navigation.render import equirectangular_directions  # noqa: E402
from worldsim.envs.navigation.scene import load_scene  # noqa: E402

TARGET_OVERHEAD = 0.5


@dataclass
class RenderResult:
    height: int
    width: int
    panoramas: list[int] = field(default_factory=list)  # per repeat
    seconds: list[float] = field(default_factory=list)  # wall, per repeat
    cpu_seconds: list[float] = field(default_factory=list)
    floor_seconds: list[float] = field(default_factory=list)
    floor_cpu_seconds: list[float] = field(default_factory=list)

    def rate(self, seconds: list[float]) -> float:
        return statistics.median(n / s for n, s in zip(self.panoramas, seconds))

    def overhead(self, cpu: bool = False) -> float:
        ours, floor = (self.cpu_seconds, self.floor_cpu_seconds) if cpu else (self.seconds, self.floor_seconds)
        return statistics.median(a / b - 1 for a, b in zip(ours, floor))

    def overhead_range(self) -> tuple[float, float]:
        ratios = [a / b - 1 for a, b in zip(self.seconds, self.floor_seconds)]
        return min(ratios), max(ratios)


def _viewpoints(house_seeds: list[int], per_house: int):
    """[(renderer, position)] for ``per_house`` evenly spread viewpoints of every house."""
    views = []
    for seed in house_seeds:
        scene = load_scene(seed)
        nodes = sorted(scene.graph.nodes)
        picks = np.linspace(0, len(nodes) - 1, min(per_house, len(nodes))).round().astype(int)
        views += [(scene.renderer, scene.position(nodes[i])) for i in picks]
    return views


def _ray_tensor(position, height: int, width: int) -> o3d.core.Tensor:
    """The (H·W, 6) float32 rays ``HouseRenderer.panorama`` casts from ``position``."""
    directions = equirectangular_directions(height, width).reshape(-1, 3)
    origins = np.broadcast_to(np.asarray(position, np.float32), directions.shape)
    return o3d.core.Tensor(np.ascontiguousarray(np.concatenate([origins, directions], axis=-1),
                                                dtype=np.float32))


def _timed(work) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure_render(views, height: int, width: int, repeats: int) -> RenderResult:
    result = RenderResult(height, width)
    rays = [_ray_tensor(position, height, width) for _, position in views]
    for renderer, position in views[:2]:  # warm-up: direction tables, caches, thread pool
        renderer.panorama(position, height, width)
    for repeat in range(repeats):
        totals = np.zeros(4)
        for index, ((renderer, position), ray) in enumerate(zip(views, rays)):
            def ours(renderer=renderer, position=position):
                renderer.panorama(position, height, width)

            def floor(renderer=renderer, ray=ray):
                renderer.scene.cast_rays(ray, nthreads=0)

            if (index + repeat) % 2:
                ours_times, floor_times = _timed(ours), _timed(floor)
            else:
                floor_times, ours_times = _timed(floor), _timed(ours)
            totals += (*ours_times, *floor_times)
        result.panoramas.append(len(views))
        result.seconds.append(totals[0])
        result.cpu_seconds.append(totals[1])
        result.floor_seconds.append(totals[2])
        result.floor_cpu_seconds.append(totals[3])
    return result


def measure_houses(count: int, first_seed: int = 10_000) -> dict[str, list[float]]:
    """Seconds per house of each generation stage, one entry per seed."""
    times: dict[str, list[float]] = {"generate_house": [], "generate_house + build_navigation_graph": [],
                                     "load_scene (uncached)": []}
    uncached_load_scene = load_scene.__wrapped__
    for seed in range(first_seed, first_seed + count):
        started = time.perf_counter()
        generate_house(seed)
        times["generate_house"].append(time.perf_counter() - started)
        started = time.perf_counter()
        build_navigation_graph(generate_house(seed))
        times["generate_house + build_navigation_graph"].append(time.perf_counter() - started)
        started = time.perf_counter()
        uncached_load_scene(seed)
        times["load_scene (uncached)"].append(time.perf_counter() - started)
    return times


def profile_render(views, height: int, width: int, top: int = 15) -> str:
    """cProfile of ``render_rays`` over the viewpoints (sorted by own time)."""
    directions = equirectangular_directions(height, width)
    profiler = cProfile.Profile()
    profiler.enable()
    for renderer, position in views:
        renderer.render_rays(position, directions)
    profiler.disable()
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(top)
    return stream.getvalue()


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 128x256, got {text!r}") from None
    return height, width


def render_table(results: list[RenderResult]) -> str:
    lines = ["| panorama (H×W) | panoramas/s | ms each | floor: cast_rays/s | floor ms "
             "| overhead vs floor (wall) | range over repeats | overhead (process CPU) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        rate, floor_rate = r.rate(r.seconds), r.rate(r.floor_seconds)
        low, high = r.overhead_range()
        verdict = "" if r.overhead() < TARGET_OVERHEAD else " ⚠"
        lines.append(f"| {r.height}×{r.width} | {rate:.1f} | {1e3 / rate:.2f} | {floor_rate:.1f} "
                     f"| {1e3 / floor_rate:.2f} | {100 * r.overhead():+.1f}%{verdict} "
                     f"| {100 * low:+.1f}% … {100 * high:+.1f}% | {100 * r.overhead(cpu=True):+.1f}% |")
    return "\n".join(lines)


def house_table(times: dict[str, list[float]]) -> str:
    lines = ["| houses | per second | ms each (median) | min … max ms |", "|---|---:|---:|---:|"]
    for name, seconds in times.items():
        median = statistics.median(seconds)
        lines.append(f"| {name} | {1 / median:.2f} | {1e3 * median:.1f} "
                     f"| {1e3 * min(seconds):.1f} … {1e3 * max(seconds):.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_size, nargs="+", default=[(128, 256), (512, 1024)],
                        metavar="HxW", help="panorama sizes (default: 128x256 512x1024)")
    parser.add_argument("--houses", type=int, nargs="+", default=[0, 1, 2], metavar="SEED",
                        help="house seeds rendered (default: 0 1 2)")
    parser.add_argument("--viewpoints", type=int, default=8, help="viewpoints per house")
    parser.add_argument("--repeats", type=int, default=5, help="repeats (median taken)")
    parser.add_argument("--generate", type=int, default=10, metavar="N",
                        help="houses timed for the generation rates (0 skips them)")
    parser.add_argument("--json", help="write raw timings and the machine description here")
    parser.add_argument("--profile", type=_size, metavar="HxW",
                        help="instead of timing, cProfile HouseRenderer.render_rays at this size")
    args = parser.parse_args(argv)

    views = _viewpoints(args.houses, args.viewpoints)
    if args.profile:
        print(f"## cProfile render_rays {args.profile[0]}x{args.profile[1]}, {len(views)} panoramas\n")
        print(profile_render(views, *args.profile))
        return 0

    machine = _machine.describe()
    machine.pop("pybullet", None)
    machine["open3d"] = importlib.metadata.version("open3d")
    machine["open3d_threads"] = "all cores (cast_rays nthreads=0)"
    results = []
    for height, width in args.sizes:
        result = measure_render(views, height, width, args.repeats)
        results.append(result)
        print(f"  {height}x{width}: {result.rate(result.seconds):.1f} panoramas/s, overhead "
              f"{100 * result.overhead():+.1f}% (load {_machine.load_average()})", file=sys.stderr)
    houses = measure_houses(args.generate) if args.generate else {}
    machine["load_average_at_end"] = _machine.load_average()

    print("Machine:\n" + _machine.markdown(machine) + "\n")
    print(f"Panoramas: {len(views)} viewpoints ({args.viewpoints} in each of houses "
          f"{', '.join(map(str, args.houses))}) per repeat, {args.repeats} repeats, medians; "
          f"floor = bare RaycastingScene.cast_rays on the same prepared rays.\n")
    print(render_table(results))
    if houses:
        print(f"\nHouses: seeds 10000–{10_000 + args.generate - 1}, one pass each.\n")
        print(house_table(houses))
    if args.json:
        payload = {"machine": machine, "argv": sys.argv,
                   "render": [{**asdict(r), "panoramas_per_s": r.rate(r.seconds),
                               "overhead_wall": r.overhead(), "overhead_cpu": r.overhead(True)}
                              for r in results],
                   "houses_seconds": houses}
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
