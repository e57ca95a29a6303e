"""The one training loop of worldsim.

An agent hands the loop a ``TrainTask`` — its Flax NNX model, a pure loss function, a
deterministic batch source and the metadata to store with checkpoints — and the loop does the
rest: optimiser, jit-compiled update, ``metrics.jsonl``, a progress bar, Orbax checkpoints,
a NaN guard, and resumption when the same command is run again on the same workdir.

    >>> model = train(config, "runs/blockpush_dfo", task)

Config keys read: ``seed``, ``train.steps``, ``train.learning_rate``, ``train.lr_decay_rate``,
``train.lr_decay_steps``, ``train.grad_clip_norm``, ``train.log_every``,
``train.checkpoint_every`` and, where present, ``train.microbatches`` (default 1).
"""

from __future__ import annotations

import dataclasses
import json
import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from worldsim.train.checkpoint import Checkpointer, has_checkpoint
from worldsim.train.configuration import config_differences, config_to_dict
from worldsim.train.metrics import MetricsWriter, first_non_finite

CONFIG_FILE = "config.json"
# Keys that may change between a run and its resumption (more steps, other logging).
RESUMABLE_KEYS = ("train.steps", "train.log_every", "train.checkpoint_every", "eval.")

LossFn = Callable[[nnx.Module, Any, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]


class TrainingDiverged(RuntimeError):
    """A loss or metric became NaN or infinite."""


class ConfigMismatch(ValueError):
    """The workdir holds a run with a different config."""


@dataclasses.dataclass
class TrainTask:
    """What an agent gives the loop.

    model: the NNX module to train (updated in place and returned).
    loss_fn: ``(model, batch, key) -> (scalar loss, {name: scalar})``, pure and jit-able.
    batch_at: ``step -> batch`` (a pytree of arrays), deterministic so a resumed run sees the
      same data as an uninterrupted one.
    meta: JSON-ready metadata stored in every checkpoint (normalisation, spaces, agent kind).
    """

    model: nnx.Module
    loss_fn: LossFn
    batch_at: Callable[[int], Any]
    meta: dict[str, Any]


def make_optimizer(train_config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Adam with exponential learning-rate decay (IBC's 0.99 per 100 steps by default)."""
    schedule = optax.exponential_decay(
        train_config.learning_rate, transition_steps=train_config.lr_decay_steps,
        decay_rate=train_config.lr_decay_rate, staircase=False)
    parts = []
    if train_config.get("grad_clip_norm", 0.0):
        parts.append(optax.clip_by_global_norm(train_config.grad_clip_norm))
    parts.append(optax.adam(schedule, eps=1e-7))
    return optax.chain(*parts)


def _check_or_write_config(workdir: Path, config_dict: dict[str, Any]) -> None:
    path = workdir / CONFIG_FILE
    if path.exists():
        previous = json.loads(path.read_text())
        differences = [d for d in config_differences(previous, config_dict)
                       if not d.startswith(RESUMABLE_KEYS)]
        if differences:
            raise ConfigMismatch(
                f"{workdir} holds a run with a different config (saved != requested):\n  "
                + "\n  ".join(differences) + "\nUse another --workdir, or the same config.")
    tmp = path.with_name(f".{CONFIG_FILE}.tmp")
    tmp.write_text(json.dumps(config_dict, indent=1))
    os.replace(tmp, path)


def _make_train_step(graphdef, loss_fn: LossFn, microbatches: int = 1):
    """The jit-compiled update ``(state, batch, key) -> (state, metrics)``.

    ``microbatches`` > 1 splits the batch into that many equal slices along its leading axis
    and accumulates their gradients (mean of slice means = the full-batch mean for per-example
    losses). Same update, smaller live activations: at IBC's batch 512 × 257 candidates the
    activations of one slice stay in cache, and a step runs 1.7× faster on a 2-core CPU
    (BENCHMARKS.md). Slice i draws its randomness from ``fold_in(key, i)``.
    """
    def train_step(state, batch, key):
        model, optimizer = nnx.merge(graphdef, state)
        if microbatches == 1:
            grad_fn = nnx.value_and_grad(lambda m: loss_fn(m, batch, key), has_aux=True)
            (loss, metrics), grads = grad_fn(model)
        else:
            (loss, metrics), grads = _accumulated_gradients(model, loss_fn, batch, key,
                                                            microbatches)
        optimizer.update(model, grads)
        metrics = {**metrics, "loss": loss, "grad_norm": optax.global_norm(grads)}
        return nnx.state((model, optimizer)), metrics

    return jax.jit(train_step, donate_argnums=0)


def _accumulated_gradients(model: nnx.Module, loss_fn: LossFn, batch: Any, key: jax.Array,
                           microbatches: int):
    """((mean loss, mean metrics), mean gradients) over ``microbatches`` slices of ``batch``,
    scanned one after another; non-parameter state (RNG counters, spectral-norm vectors)
    carries from slice to slice."""
    model_def, params, rest = nnx.split(model, nnx.Param, ...)
    slices = jax.tree.map(lambda x: x.reshape(microbatches, x.shape[0] // microbatches,
                                              *x.shape[1:]), batch)

    def slice_gradients(rest, index, batch_slice):
        def loss_of(p):
            m = nnx.merge(model_def, p, rest)
            loss, metrics = loss_fn(m, batch_slice, jax.random.fold_in(key, index))
            return loss, (metrics, nnx.state(m, nnx.Not(nnx.Param)))

        (loss, (metrics, rest)), grads = jax.value_and_grad(loss_of, has_aux=True)(params)
        return rest, ((loss, metrics), grads)

    def one_slice(carry, inputs):
        rest, totals = carry
        rest, outputs = slice_gradients(rest, *inputs)
        return (rest, jax.tree.map(jnp.add, totals, outputs)), None

    shapes = jax.eval_shape(lambda: slice_gradients(rest, 0, jax.tree.map(lambda x: x[0],
                                                                          slices))[1])
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    (rest, totals), _ = jax.lax.scan(one_slice, (rest, zeros), (jnp.arange(microbatches), slices))
    nnx.update(model, rest)
    return jax.tree.map(lambda total: total / microbatches, totals)


def train(config: ml_collections.ConfigDict, workdir: str | Path, task: TrainTask,
          progress: bool = True) -> nnx.Module:
    """Trains ``task.model`` for ``config.train.steps`` steps; resumes from ``workdir``."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    config_dict = config_to_dict(config)
    _check_or_write_config(workdir, config_dict)
    tc = config.train
    optimizer = nnx.Optimizer(task.model, make_optimizer(tc), wrt=nnx.Param)
    graphdef, state = nnx.split((task.model, optimizer))
    checkpointer = Checkpointer(workdir)
    start = checkpointer.latest_step() or 0
    if start:
        restored, _ = checkpointer.restore(state.to_pure_dict())
        nnx.replace_by_pure_dict(state, restored)
    metrics_writer = MetricsWriter(workdir)
    metrics_writer.truncate_after(start)
    microbatches = tc.get("microbatches", 1)
    _check_microbatches(microbatches, task.batch_at(start) if microbatches != 1 else None)
    train_step = _make_train_step(graphdef, task.loss_fn, microbatches)
    base_key = jax.random.key(config.seed)
    meta = lambda step: {"step": step, "config": config_dict, **task.meta}  # noqa: E731

    stack = contextlib.ExitStack()
    stack.enter_context(_terminate_as_interrupt())
    bar = tqdm(total=tc.steps, initial=start, disable=not progress, desc=f"train {workdir.name}",
               unit="step", dynamic_ncols=True)
    step, last_log, last_time = start, start, time.perf_counter()
    try:
        while step < tc.steps:
            batch = task.batch_at(step)
            state, metrics = train_step(state, batch, jax.random.fold_in(base_key, step))
            step += 1
            bar.update(1)
            log_now = step % tc.log_every == 0 or step == tc.steps
            save_now = step % tc.checkpoint_every == 0 or step == tc.steps
            if log_now or save_now:  # never save parameters that a NaN has reached
                values = {k: float(np.asarray(v)) for k, v in metrics.items()}
                _raise_if_diverged(values, step, checkpointer)
            if log_now:
                now = time.perf_counter()
                values["steps_per_sec"] = (step - last_log) / max(now - last_time, 1e-9)
                last_log, last_time = step, now
                metrics_writer.write(step, values)
                bar.set_postfix(loss=f"{values['loss']:.4f}")
            if save_now:
                checkpointer.save(step, state.to_pure_dict(), meta(step))
    except KeyboardInterrupt:
        if step > (checkpointer.latest_step() or 0):
            checkpointer.save(step, state.to_pure_dict(), meta(step))
        raise
    finally:
        bar.close()
        checkpointer.close()
        stack.close()
    nnx.update((task.model, optimizer), state)  # the donated buffers of task.model are gone
    return task.model


def _check_microbatches(microbatches: Any, batch: Any) -> None:
    """``train.microbatches`` must be a positive int that divides every batch leaf's length
    (``batch``: one batch, or None to check the count alone)."""
    if isinstance(microbatches, bool) or not isinstance(microbatches, int) or microbatches < 1:
        raise ValueError(f"train.microbatches={microbatches!r} must be a positive integer")
    if batch is None or microbatches == 1:
        return
    if any(np.ndim(leaf) == 0 for leaf in jax.tree.leaves(batch)):
        raise ValueError(f"train.microbatches={microbatches}: the batch has scalar leaves, "
                         "which cannot be sliced; use 1")
    sizes = {int(np.shape(leaf)[0]) for leaf in jax.tree.leaves(batch)}
    uneven = sorted(n for n in sizes if n % microbatches)
    if uneven:
        raise ValueError(f"train.microbatches={microbatches} does not divide the batch size "
                         f"{uneven[0]}; use a divisor of it (or 1)")


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM (a scheduler's preemption, ``kill``) is handled like Ctrl-C: the loop saves a
    checkpoint of the last step before stopping. Only possible from the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_if_diverged(values: dict[str, float], step: int, checkpointer: Checkpointer) -> None:
    ordered = {"loss": values.get("loss", 0.0), **values}  # name the loss first if it is bad
    bad = first_non_finite(ordered)
    if bad is not None:
        raise TrainingDiverged(
            f"training diverged at step {step}: {bad} = {values[bad]}. The last good checkpoint "
            f"is step {checkpointer.latest_step()} in {checkpointer.directory}; lower "
            f"train.learning_rate or set train.grad_clip_norm and re-run.")


def restore_trained_model(workdir: str | Path, build_model: Callable[[ml_collections.ConfigDict, dict], nnx.Module],
                          step: int | None = None) -> tuple[nnx.Module, dict[str, Any], ml_collections.ConfigDict]:
    """(model, checkpoint meta, config) of the run in ``workdir`` (latest step unless given).

    ``build_model(config, meta)`` makes a freshly initialised model of the right shapes; its
    parameters are then replaced by the checkpoint's.
    """
    workdir = Path(workdir)
    if not has_checkpoint(workdir):
        raise FileNotFoundError(
            f"{workdir} has no checkpoint (looked in {workdir / 'checkpoints'}); train first: "
            f"worldsim train --config CONFIG --workdir {workdir}")
    checkpointer = Checkpointer(workdir)
    try:
        meta = checkpointer.restore_meta(step)
        config = ml_collections.ConfigDict(meta["config"])
        model = build_model(config, meta)
        optimizer = nnx.Optimizer(model, make_optimizer(config.train), wrt=nnx.Param)
        state = nnx.state((model, optimizer))
        restored, _ = checkpointer.restore(state.to_pure_dict(), step)
    finally:
        checkpointer.close()
    nnx.replace_by_pure_dict(state, restored)
    nnx.update((model, optimizer), state)
    return model, meta, config
