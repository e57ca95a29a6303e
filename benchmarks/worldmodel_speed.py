"""World-model speed (issue 5): memory insertion per panorama, prediction latency per step and
training steps per second, each beside a reference measured in the same run.

    .venv/bin/python benchmarks/worldmodel_speed.py
    .venv/bin/python benchmarks/worldmodel_speed.py --parts memory --repeats 5
    .venv/bin/python benchmarks/worldmodel_speed.py --parts predict train --repeats 5

The panoramas are rendered along one shortest path of house ``--house`` (``scene_path``).
Times are medians over ``--repeats`` after one warm-up (compilation) call, garbage collector
off while timing (as ``timeit``); JAX calls end with ``block_until_ready``.

``memory``: ``PointCloudMemory.add`` (1 cm voxels, latest wins) of one panorama into a copy of
a memory already holding ``--memory-panoramas`` panoramas of the same path, at 256×512 and at
the training size 64×128, beside

* the *floor*: ``back_project`` of that panorama alone (the part every insert shares);
* a *NumPy reference*: the same rule written plainly over all points (concatenate, voxel cell
  of every point, the last occurrence of each cell via ``np.unique`` on the reversed rows);
* a *Python dict reference*: an incremental ``{voxel cell: point}`` dict, one assignment per
  new point (the dict of the older panoramas is built and copied untimed).

Both references are asserted to leave exactly the memory's points, colours and classes.

``predict``: one world-model step, batch 1 — guidance (rgb, semantic, depth, mask at the
config's size, re-projected from a 2-panorama memory) → predicted panorama, prior mean
(``sample=False``, as the evaluation does). The trained checkpoint ``--workdir`` if it loads,
else a freshly initialised model of ``configs/worldmodel/cpu.py``. Also one whole rollout step:
re-project the memory + predict + add the predicted pixels to (a copy of) the memory.

``train``: one training step (forward, backward, Adam) at ``configs/worldmodel/cpu.py``
(batch 4 of 64×128, joint stage, batch from ``GuidanceBatches`` on the device beforehand).

For ``predict`` and ``train`` the reference is not a NumPy U-Net but the *FLOP floor*: XLA's
own count of the compiled step's FLOPs (``cost_analysis``) divided by this machine's dense
float32 matmul peak (``backbones_speed.matmul_peak``, best of the runs before and after).
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import statistics
import sys
import time

import jax
import numpy as np
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _machine  # noqa: E402
from backbones_speed import _flops as xla_flops, matmul_peak  # noqa: E402

from worldsim.train.configuration import load_config  # noqa: E402
from worldsim.train.loop import _make_train_step, make_optimizer  # noqa: E402
from worldsim.worldmodel.data import (GuidanceBatches, guidance_from_frames, reproject_memory,  # noqa: E402
                                      scene_path, trajectory_from_scene)
from worldsim.worldmodel.memory import PointCloudMemory, back_project, valid_pixels  # noqa: E402
from worldsim.worldmodel.training import build_world_model, load_world_model, make_loss_fn  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "worldmodel", "cpu.py")
VOXEL = 0.01  # metres, the memory's default and the training config's


def _median_seconds(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after one warm-up call, with Python's
    cyclic garbage collector off while timing (as ``timeit`` does: otherwise its full passes
    over the dict reference's millions of tuples dominate that reference's time)."""
    jax.block_until_ready(fn())
    times = []
    gc.disable()
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times.append(time.perf_counter() - start)
    finally:
        gc.enable()
    return statistics.median(times)


def walk(house: int, length: int, height: int, width: int):
    """``Trajectory`` of ``length`` consecutive viewpoints of house ``house`` at H×W."""
    return trajectory_from_scene(house, scene_path(house, length, np.random.default_rng(0)), height, width)


# --- memory insertion -------------------------------------------------------------------------

def _cells(points: np.ndarray) -> np.ndarray:
    """(N, 3) int64 voxel cells of (N, 3) float32 points, as the memory computes them."""
    return np.floor(points.astype(np.float64) / VOXEL).astype(np.int64)


def numpy_insert(old: dict[str, np.ndarray], frame: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Plain NumPy latest-wins voxel insert. old: points (M, 3) float32, colors (M, 3) uint8,
    labels (M,) uint8, oldest first; frame: rgb (H, W, 3), semantic (H, W), depth (H, W) metres,
    position (3,). Returns the kept points, colours and labels, oldest first."""
    valid = valid_pixels(frame["depth"])
    points = np.concatenate([old["points"], back_project(frame["depth"], frame["position"])])
    colors = np.concatenate([old["colors"], frame["rgb"][valid]])
    labels = np.concatenate([old["labels"], frame["semantic"][valid].astype(np.uint8)])
    _, last = np.unique(_cells(points)[::-1], axis=0, return_index=True)  # first seen from the end
    keep = np.sort(len(points) - 1 - last)
    return {"points": points[keep], "colors": colors[keep], "labels": labels[keep]}


def dict_insert(voxels: dict, frame: dict[str, np.ndarray]) -> dict:
    """Plain Python latest-wins insert into ``voxels`` {(i, j, k) cell: (point, colour, label)}."""
    valid = valid_pixels(frame["depth"])
    points = back_project(frame["depth"], frame["position"])
    rows = zip(map(tuple, _cells(points).tolist()), map(tuple, points.tolist()),
               map(tuple, frame["rgb"][valid].tolist()), frame["semantic"][valid].tolist())
    for cell, point, color, label in rows:
        voxels[cell] = (point, color, label)
    return voxels


def as_dict(memory: dict[str, np.ndarray]) -> dict:
    """The {cell: (point, colour, label)} dict of memory arrays (points, colors, labels)."""
    return {cell: (point, color, label) for cell, point, color, label in zip(
        map(tuple, _cells(memory["points"]).tolist()), map(tuple, memory["points"].tolist()),
        map(tuple, memory["colors"].tolist()), memory["labels"].tolist())}


def _arrays(memory: PointCloudMemory) -> dict[str, np.ndarray]:
    return {"points": memory.points, "colors": memory.colors, "labels": memory.labels}


def bench_insert(house: int, height: int, width: int, previous: int, repeats: int) -> dict:
    """Times one ``add`` of an H×W panorama into a memory of ``previous`` panoramas."""
    trajectory = walk(house, previous + 1, height, width)
    frames = [trajectory.frame(t) for t in range(previous + 1)]
    base = PointCloudMemory(voxel_size=VOXEL)
    for frame in frames[:-1]:
        base.add(frame["rgb"], frame["semantic"], frame["depth"], frame["position"])
    new, old = frames[-1], _arrays(base)
    old_dict = as_dict(old)
    dict_copies = [old_dict.copy() for _ in range(repeats + 1)]

    def ours():
        memory = copy.copy(base)  # ``add`` replaces the arrays, it never writes into them
        memory.add(new["rgb"], new["semantic"], new["depth"], new["position"])
        return memory

    result, reference, voxels = ours(), numpy_insert(old, new), dict_insert(old_dict.copy(), new)
    for key, value in _arrays(result).items():
        assert np.array_equal(value, reference[key]), f"NumPy reference: {key} differ"
    assert voxels == as_dict(_arrays(result)), "dict reference: voxel sets differ"
    return {"size": f"{height}x{width}", "before": len(base), "after": len(result),
            "offered": int(valid_pixels(new["depth"]).sum()),
            "add": _median_seconds(ours, repeats),
            "floor": _median_seconds(lambda: back_project(new["depth"], new["position"]), repeats),
            "numpy": _median_seconds(lambda: numpy_insert(old, new), repeats),
            # len(): the dict itself would be flattened as a pytree by block_until_ready
            "dict": _median_seconds(lambda: len(dict_insert(dict_copies.pop(), new)), repeats)}


# --- prediction and training ------------------------------------------------------------------

def world_model(workdir: str):
    """(model, config, where it came from): the checkpoint if it loads, else a fresh model."""
    try:
        model, meta, config = load_world_model(workdir)
        return model, config, f"checkpoint {workdir}, step {meta.get('step')}"
    except Exception as error:  # any reason not to load: say it and fall back
        config = load_config(CONFIG)
        return build_world_model(config), config, f"fresh {CONFIG} ({type(error).__name__}: {error})"


def bench_predict(house: int, workdir: str, repeats: int) -> dict:
    """Prediction latency (batch 1) and one whole rollout step at the model's panorama size."""
    model, config, source = world_model(workdir)
    height, width = (int(v) for v in config.data.panorama_size)
    trajectory = walk(house, 3, height, width)
    frames, position = [trajectory.frame(0), trajectory.frame(1)], trajectory.position[2]
    guidance = {k: jax.device_put(v[None]) for k, v in guidance_from_frames(frames, position, VOXEL).items()}
    graphdef, state = nnx.split(model)

    def step(state, guidance, key):
        outputs, _ = nnx.merge(graphdef, state)(guidance, key=key, sample=False)
        return {"rgb": outputs["rgb"], "semantic": outputs["semantic"], "depth": outputs["depth"]}

    key = jax.random.key(0)
    start = time.perf_counter()
    compiled = jax.jit(step).lower(state, guidance, key).compile()
    compile_s = time.perf_counter() - start
    memory = PointCloudMemory(voxel_size=VOXEL)
    for frame in frames:
        memory.add(frame["rgb"], frame["semantic"], frame["depth"], frame["position"])
    capacity = 3 * height * width  # as the evaluation pads: one compiled re-projection

    def rollout_step():
        seen = reproject_memory(memory, position, height, width, capacity)
        out = {k: np.asarray(v[0]) for k, v in compiled(state, {k: v[None] for k, v in seen.items()},
                                                          key).items()}
        rgb = np.clip(np.round(out["rgb"] * 255.0), 0, 255).astype(np.uint8)
        copy.copy(memory).add(rgb, out["semantic"].astype(np.uint8), out["depth"], position,
                              mask=~seen["mask"], source="predicted")

    return {"source": source, "size": f"{height}x{width}", "compile": compile_s,
            "flops": xla_flops(compiled),
            "predict": _median_seconds(lambda: compiled(state, guidance, key), repeats),
            "rollout": _median_seconds(rollout_step, repeats)}


def bench_train(house: int, repeats: int, config_path: str = CONFIG) -> dict:
    """Training steps per second at ``config_path`` (default ``configs/worldmodel/cpu.py``;
    class weights, if the config has them, are left out: one gather per pixel)."""
    config = load_config(config_path)
    data = config.data
    height, width = (int(v) for v in data.panorama_size)
    batches = GuidanceBatches([walk(house, data.scene_walk_length, height, width)], data.batch_size,
                              context_frames=data.context_frames, max_gap=data.max_gap,
                              seed=config.seed, roll=data.roll, voxel_size=data.voxel_size)
    batch = jax.device_put(batches.batch_at(0))
    model = build_world_model(config)
    optimizer = nnx.Optimizer(model, make_optimizer(config.train), wrt=nnx.Param)
    graphdef, state = nnx.split((model, optimizer))
    key = jax.random.key(config.seed)
    start = time.perf_counter()
    compiled = _make_train_step(graphdef, make_loss_fn(config)).lower(state, batch, key).compile()
    compile_s = time.perf_counter() - start
    holder = {"state": state}

    def run():  # the step donates its state: carry it from call to call
        holder["state"], metrics = compiled(holder["state"], batch, key)
        return metrics

    seconds = _median_seconds(run, repeats)
    return {"size": f"{data.batch_size} x {height}x{width}", "compile": compile_s,
            "flops": xla_flops(compiled), "step": seconds}


# --- report -----------------------------------------------------------------------------------

def print_memory(rows: list[dict], previous: int, house: int) -> None:
    print(f"## Memory insertion per panorama (1 cm voxels, latest wins; memory of {previous} "
          f"panoramas of house {house}; medians)\n")
    print("| panorama | points before → after (offered) | add (ms) | floor: back_project (ms) | "
          "add / floor | NumPy reference (ms) | NumPy / add | dict reference (ms) | dict / add |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['size']} | {r['before']:,} → {r['after']:,} ({r['offered']:,}) | "
              f"{r['add'] * 1e3:.1f} | {r['floor'] * 1e3:.1f} | {r['add'] / r['floor']:.1f} | "
              f"{r['numpy'] * 1e3:.1f} | {r['numpy'] / r['add']:.1f}× | {r['dict'] * 1e3:.1f} | "
              f"{r['dict'] / r['add']:.1f}× |")
    print("\nBoth references asserted to keep exactly the memory's points, colours and classes.\n")


def print_model(predict: dict | None, train: dict | None, peak: float) -> None:
    print(f"## World model (dense float32 matmul peak: {peak:.1f} GFLOP/s; floor = XLA FLOPs / peak)\n")
    print("| measurement | input | time (ms) | per second | compile (s) | GFLOP (XLA) | floor (ms) | "
          "time / floor | fraction of peak |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    if predict:
        rows.append(("prediction, batch 1, prior mean", predict["size"], predict["predict"],
                     predict["compile"], predict["flops"]))
    if train:
        rows.append(("training step (fwd + bwd + Adam)", train["size"], train["step"], train["compile"],
                     train["flops"]))
    for name, size, seconds, compile_s, flops in rows:
        floor = flops / (peak * 1e9)
        print(f"| {name} | {size} | {seconds * 1e3:.1f} | {1 / seconds:.1f} | {compile_s:.1f} | "
              f"{flops / 1e9:.2f} | {floor * 1e3:.2f} | {seconds / floor:.1f} | {floor / seconds:.2f} |")
    if predict:
        seconds = predict["rollout"]
        print(f"| rollout step: re-project + predict + add | {predict['size']} | "
              f"{seconds * 1e3:.1f} | {1 / seconds:.1f} | — | — | — | — | — |")
        print(f"\nModel: {predict['source']}.")
    print()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", choices=("memory", "predict", "train"),
                        default=["memory", "predict", "train"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--house", type=int, default=100_000, help="house seed of the panoramas")
    parser.add_argument("--memory-panoramas", type=int, default=4,
                        help="panoramas already in the memory before the timed add")
    parser.add_argument("--workdir", default=os.path.join(ROOT, "runs", "worldmodel_cpu"),
                        help="trained world-model run for the prediction latency")
    parser.add_argument("--config", default=CONFIG,
                        help="world-model config of the timed training step (path[:argument])")
    args = parser.parse_args(argv)

    info = _machine.describe()
    if "memory" in args.parts:
        rows = [bench_insert(args.house, h, w, args.memory_panoramas, args.repeats)
                for h, w in ((256, 512), (64, 128))]
        print_memory(rows, args.memory_panoramas, args.house)
    if "predict" in args.parts or "train" in args.parts:
        peak_before = matmul_peak(max(args.repeats, 5))
        predict = (bench_predict(args.house, args.workdir, args.repeats)
                   if "predict" in args.parts else None)
        train = bench_train(args.house, args.repeats, args.config) if "train" in args.parts else None
        peak_after = matmul_peak(max(args.repeats, 5))
        print_model(predict, train, max(peak_before, peak_after))
        print(f"Matmul peak before / after: {peak_before:.1f} / {peak_after:.1f} GFLOP/s.\n")
    info.update({"jax": jax.__version__, "jax_device": str(jax.devices()[0]),
                 "load_average_at_end": _machine.load_average()})
    print(_machine.markdown(info))


if __name__ == "__main__":
    main()
