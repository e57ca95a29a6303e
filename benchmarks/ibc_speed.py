"""Implicit-BC speed at the paper's defaults, against this machine's dense matmul peak.

    python benchmarks/ibc_speed.py [--repeats 5] [--json out.json]

Measures, in one process:
  * the floor: float32 dense matmul throughput (GFLOP/s) of XLA on this machine (the best of
    a few square sizes), the figure both ratios below are taken against;
  * inference: one action by derivative-free optimisation (16384 samples, 3 iterations) with the
    128×8 ResNet energy model on a 20-D observation window — latency, control rate it allows,
    XLA-counted FLOPs and achieved GFLOP/s as a fraction of the peak;
  * training: one InfoNCE step at batch 512 with 256 uniform counter-examples — steps/s,
    FLOPs per step and fraction of the peak — on the whole batch at once and accumulated over
    32 slices of 16 examples (``train.microbatches``, the configs' default for DFO).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from worldsim.agents.ibc.agent import make_loss_fn, make_predict_fn
from worldsim.agents.ibc.networks import StateEnergyModel
from worldsim.agents.ibc.samplers import ActionBounds
from worldsim.configs.ibc.base import base_config
from worldsim.train.loop import _make_train_step, make_optimizer

OBS_DIM, ACTION_DIM = 20, 2  # BlockPush: 10-D state × 2 frames, (dx, dy)


def _time(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` (which must block until its result is ready)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _flops(compiled) -> float:
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return float(analysis.get("flops", float("nan")))


def matmul_peak(repeats: int) -> float:
    """Best float32 matmul GFLOP/s over a few sizes."""
    best = 0.0
    for n in (1024, 2048, 4096):
        a = jnp.ones((n, n), jnp.float32)
        f = jax.jit(lambda x: x @ x)
        seconds = _time(lambda: f(a).block_until_ready(), repeats)
        best = max(best, 2 * n ** 3 / seconds / 1e9)
    return best


def inference(repeats: int) -> dict:
    config = base_config("worldsim/BlockPush-v0", "", sampler="dfo")
    model = StateEnergyModel(OBS_DIM, ACTION_DIM, 128, 8, rngs=nnx.Rngs(0))
    bounds = ActionBounds(-jnp.ones(ACTION_DIM) * 1.1, jnp.ones(ACTION_DIM) * 1.1)
    predict = make_predict_fn(config, bounds)
    graphdef, state = nnx.split(model)
    fn = jax.jit(lambda s, inputs, key: predict(nnx.merge(graphdef, s), inputs, key))
    inputs = {"obs": jnp.zeros((1, OBS_DIM))}
    key = jax.random.key(0)
    compiled = fn.lower(state, inputs, key).compile()
    seconds = _time(lambda: compiled(state, inputs, key).block_until_ready(), repeats)
    flops = _flops(compiled)
    return {"latency_ms": 1e3 * seconds, "control_hz": 1 / seconds, "gflop": flops / 1e9,
            "gflops_per_s": flops / seconds / 1e9}


def training(repeats: int, microbatches: int) -> dict:
    config = base_config("worldsim/BlockPush-v0", "", sampler="dfo")
    model = StateEnergyModel(OBS_DIM, ACTION_DIM, 128, 8, rngs=nnx.Rngs(0))
    bounds = ActionBounds(-jnp.ones(ACTION_DIM) * 1.1, jnp.ones(ACTION_DIM) * 1.1)
    optimizer = nnx.Optimizer(model, make_optimizer(config.train), wrt=nnx.Param)
    graphdef, state = nnx.split((model, optimizer))
    step = _make_train_step(graphdef, make_loss_fn(config, bounds), microbatches)
    rng = np.random.default_rng(0)
    batch = {"inputs": {"obs": jnp.asarray(rng.normal(size=(512, OBS_DIM)), jnp.float32)},
             "actions": jnp.asarray(rng.uniform(-1, 1, (512, ACTION_DIM)), jnp.float32)}
    key = jax.random.key(0)
    compiled = step.lower(state, batch, key).compile()
    holder = {"state": state}

    def run():
        holder["state"], metrics = compiled(holder["state"], batch, key)
        jax.block_until_ready(metrics)

    seconds = _time(run, repeats)
    flops = _flops(compiled)
    return {"steps_per_s": 1 / seconds, "gflop": flops / 1e9, "gflops_per_s": flops / seconds / 1e9}


def machine() -> str:
    model = "unknown CPU"
    if os.path.exists("/proc/cpuinfo"):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (f"{model}, {os.cpu_count()} cores, {platform.python_version()}, jax {jax.__version__} "
            f"({jax.devices()[0].platform}), load {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    peak = matmul_peak(args.repeats)
    infer = inference(args.repeats)
    trainers = {m: training(args.repeats, m) for m in (1, 32)}
    # XLA counts a scan's body once, not once per slice: the sliced step does the whole
    # batch's arithmetic, so its rate is taken against the whole-batch count.
    sliced = trainers[32]
    sliced["gflop"] = trainers[1]["gflop"]
    sliced["gflops_per_s"] = sliced["gflop"] * sliced["steps_per_s"]
    result = {"machine": machine(), "matmul_peak_gflops": peak, "inference": infer,
              "training": trainers[1], "training_microbatches_32": trainers[32]}
    print(f"machine: {result['machine']}")
    print("| measurement | value | FLOPs (XLA) | GFLOP/s | fraction of matmul peak |")
    print("|---|---|---|---|---|")
    print(f"| dense matmul peak (floor) | — | — | {peak:.1f} | 1.00 |")
    print(f"| DFO inference, 16384 samples × 3 it, 128×8 | {infer['latency_ms']:.1f} ms "
          f"({infer['control_hz']:.1f} Hz) | {infer['gflop']:.2f} G | {infer['gflops_per_s']:.1f} "
          f"| {infer['gflops_per_s'] / peak:.2f} |")
    for microbatches, trainer in trainers.items():
        how = "whole batch" if microbatches == 1 else f"{microbatches} micro-batches"
        print(f"| training step, batch 512 × 257 candidates, {how} | "
              f"{trainer['steps_per_s']:.2f} steps/s | {trainer['gflop']:.1f} G | "
              f"{trainer['gflops_per_s']:.1f} | {trainer['gflops_per_s'] / peak:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
