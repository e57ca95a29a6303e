"""Multi-task image classifiers on the shared ViT backbones: training task, loading, evaluation.

    worldsim train --config configs/backbones/vit.py:dense --workdir runs/vision/dense
    python -m worldsim.agents.vision.training runs/vision/dense --out runs/vision/dense/eval.json
    python -m worldsim.agents.vision.training runs/vision/vmoe --capacity 0.25 --priority on
    python -m worldsim.agents.vision.training runs/vision/task_moe --task-networks

Model: ``VisionTransformer`` (dense, + TokenLearner, V-MoE or task-level MoE, from
``config.model``) with **one shared head over the union of both tasks' classes**
(``data.CLASS_NAMES``: 7 room kinds, then the 4 gripper places). Each example's logits outside
its own task's classes are masked to −1e9 before the softmax, so the loss is the cross-entropy
within the task and the prediction is the argmax over the task's classes. (One head keeps the
model a plain ``VisionTransformer``, so ``extract_task_network`` applies to it unchanged.)
Task ids go to the model as ``task_ids`` (used only by the task-routed MoE).

Loss = mean cross-entropy + ``aux["aux_loss"]`` (the weighted router losses; 0 without MoE).
Images are uint8 in the batches and scaled to [−1, 1] inside the model call.

``evaluate_vision_model(workdir)`` → per-task accuracy on the held-out split (val_unseen houses,
held-out BlockSort seeds), XLA FLOPs per image (``cost_analysis`` of the compiled forward pass
at the evaluation batch size), parameter count and images/s; MoE options: the inference
capacity factor and batch priority routing (BPR) for token-routed MoE, and per-task extracted
networks for task-routed MoE.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from worldsim.agents.vision.data import (CLASS_NAMES, CLASS_OFFSETS, CLASS_TASK, TASKS,
                                         DatasetSpec, VisionBatches, VisionDataset, load_or_build)
from worldsim.nn import MoeConfig, MoeMlp, VisionTransformer, extract_task_network
from worldsim.train.loop import TrainTask, restore_trained_model

AGENT = "vision"
MOE_ROUTERS = ("none", "token", "task")
_MASK = -1e9


# ------------------------------------------------------------------------------------ model

def moe_config(config: ml_collections.ConfigDict) -> MoeConfig | None:
    """The ``MoeConfig`` of ``config.model.moe`` (None for a dense model)."""
    m = config.model.moe
    if m.router not in MOE_ROUTERS:
        raise ValueError(f"model.moe.router={m.router!r}; allowed: {', '.join(MOE_ROUTERS)}")
    if m.router == "none":
        return None
    layers = m.layers if isinstance(m.layers, str) else tuple(int(i) for i in m.layers)
    return MoeConfig(num_experts=m.num_experts, k=m.k, layers=layers,
                     capacity_factor=m.capacity_factor,
                     eval_capacity_factor=m.eval_capacity_factor or None,
                     batch_priority=m.batch_priority, noise_std=m.noise_std,
                     importance_loss_weight=m.importance_loss_weight,
                     load_loss_weight=m.load_loss_weight, router=m.router,
                     num_tasks=len(TASKS) if m.router == "task" else 0)


def build_vision_model(config: ml_collections.ConfigDict, meta: dict[str, Any] | None = None
                       ) -> VisionTransformer:
    """A freshly initialised classifier for ``config`` (seed ``config.seed``)."""
    m = config.model
    layer = m.tokenlearner_layer
    return VisionTransformer(width=m.width, depth=m.depth, mlp_dim=m.mlp_dim,
                             num_heads=m.num_heads, patch_size=m.patch_size,
                             image_size=tuple(config.data.image_size),
                             num_classes=len(CLASS_NAMES), pool=m.pool, moe=moe_config(config),
                             tokenlearner_layer=None if layer < 0 else layer,
                             num_tokens=m.num_tokens, rngs=nnx.Rngs(config.seed))


def _scale(images: jax.Array) -> jax.Array:
    return images.astype(jnp.float32) / 127.5 - 1.0


def masked_logits(logits: jax.Array, task_ids: jax.Array) -> jax.Array:
    """Logits (B, len(CLASS_NAMES)) with every class outside the example's task at −1e9."""
    own = jnp.asarray(CLASS_TASK)[None, :] == task_ids[:, None]
    return jnp.where(own, logits, _MASK)


def global_labels(labels: jax.Array, task_ids: jax.Array) -> jax.Array:
    return labels + jnp.asarray(CLASS_OFFSETS, jnp.int32)[task_ids]


def loss_fn(model: VisionTransformer, batch: dict[str, jax.Array], key: jax.Array):
    """(cross-entropy within each example's task + router aux loss, metrics)."""
    task_ids = batch["task_ids"]
    logits, aux = model(_scale(batch["images"]), task_ids=task_ids, train=True, rngs=key)
    logits = masked_logits(logits, task_ids)
    targets = global_labels(batch["labels"], task_ids)
    cross_entropy = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, targets))
    correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
    metrics = {"cross_entropy": cross_entropy, "aux_loss": aux["aux_loss"]}
    for task, name in enumerate(TASKS):
        mask = (task_ids == task).astype(jnp.float32)
        metrics[f"accuracy/{name}"] = jnp.sum(correct * mask) / jnp.maximum(jnp.sum(mask), 1.0)
    dropped = [v for k, v in aux.items() if k.endswith("/dropped_token_fraction")]
    if dropped:
        metrics["dropped_token_fraction"] = jnp.mean(jnp.stack(dropped))
    return cross_entropy + aux["aux_loss"], metrics


# ------------------------------------------------------------------------------------- data

def dataset_spec(config: ml_collections.ConfigDict, split: str) -> DatasetSpec:
    d = config.data
    if split == "train":
        return DatasetSpec("train", tuple(d.image_size), d.train_nav_houses, d.train_block_episodes)
    if split == "eval":
        return DatasetSpec("eval", tuple(d.image_size), d.eval_nav_houses, d.eval_block_episodes)
    raise ValueError(f"split={split!r}; allowed: train, eval")


def load_split(config: ml_collections.ConfigDict, split: str,
               progress: bool = False) -> VisionDataset:
    """The cached (built on first use) ``train`` or held-out ``eval`` split of ``config``."""
    return load_or_build(dataset_spec(config, split), config.data.cache_dir, progress)


def make_train_task(config: ml_collections.ConfigDict) -> TrainTask:
    if config.get("agent") != AGENT:
        raise ValueError(f"agent={config.get('agent')!r}; this builder trains agent {AGENT!r}")
    dataset = load_split(config, "train", progress=True)
    batches = VisionBatches(dataset, config.data.batch_size, config.seed, config.data.roll)
    meta = {"agent": AGENT, "class_names": list(CLASS_NAMES), "tasks": list(TASKS),
            "train_examples": {name: int(np.sum(dataset.tasks == t))
                               for t, name in enumerate(TASKS)}}
    return TrainTask(model=build_vision_model(config, meta), loss_fn=loss_fn,
                     batch_at=batches.batch_at, meta=meta)


def load_vision_model(workdir: str | Path, step: int | None = None
                      ) -> tuple[VisionTransformer, ml_collections.ConfigDict]:
    """(model, config) of a trained vision run (latest checkpoint unless ``step``)."""
    model, meta, config = restore_trained_model(workdir, build_vision_model, step)
    if meta.get("agent") != AGENT:
        raise ValueError(f"{workdir} holds a {meta.get('agent')!r} run, not a vision classifier")
    return model, config


# ------------------------------------------------------------------------------- evaluation

def count_params(model: nnx.Module) -> int:
    return int(sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


def with_moe_inference(model: nnx.Module, capacity_factor: float | None = None,
                       batch_priority: bool | None = None) -> nnx.Module:
    """A copy whose token-routed MoE layers evaluate with another capacity factor (C =
    ceil(S·K·cf/E), rounded up to ×4) and/or batch priority routing. None keeps the setting."""
    if capacity_factor is not None and not capacity_factor > 0:
        raise ValueError(f"capacity_factor={capacity_factor}; it must be > 0")
    copy = nnx.clone(model)
    changed = 0
    for _, module in list(nnx.iter_modules(copy)):
        if isinstance(module, MoeMlp):
            updates = {}
            if capacity_factor is not None:
                updates["eval_capacity_factor"] = float(capacity_factor)
            if batch_priority is not None:
                updates["batch_priority"] = bool(batch_priority)
            module.config = dataclasses.replace(module.config, **updates)
            module.router.config = module.config
            changed += 1
    if not changed:
        raise ValueError("capacity_factor / batch_priority apply to token-routed MoE models "
                         "(model.moe.router='token'); this model has no such layer")
    return copy


def _padded_batches(n: int, batch_size: int):
    """Index arrays of ``batch_size`` covering range(n), the last one padded by repeating
    index 0 (padding is dropped from the results; one shape, one compile)."""
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(start + batch_size, n))
        yield idx, np.concatenate([idx, np.zeros(batch_size - len(idx), idx.dtype)])


def measure(model: nnx.Module, dataset: VisionDataset, indices: np.ndarray, batch_size: int,
            timing_batches: int = 5) -> dict[str, Any]:
    """Accuracy per task on ``dataset[indices]``, XLA FLOPs per image, parameters, images/s.

    One compile (``jax.jit(...).lower(...).compile()``): its ``cost_analysis()["flops"]`` /
    batch size gives the FLOPs, and the same executable runs every batch. Throughput: the best
    of 3 timed passes over ``timing_batches`` batches, after a warm-up call.
    """
    graphdef, state = nnx.split(model)

    def forward(state, images, task_ids):
        logits, _ = nnx.merge(graphdef, state)(_scale(images), task_ids=task_ids)
        return jnp.argmax(masked_logits(logits, task_ids), axis=-1)

    if len(indices) == 0:
        raise ValueError("no examples to evaluate")
    first = np.resize(indices, batch_size)
    example = (state, dataset.images[first], dataset.tasks[first])
    compiled = jax.jit(forward).lower(*example).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    predictions = np.zeros(len(indices), np.int64)
    for idx, padded in _padded_batches(len(indices), batch_size):
        rows = indices[padded]
        out = compiled(state, dataset.images[rows], dataset.tasks[rows])
        predictions[idx] = np.asarray(out)[: len(idx)]
    targets = dataset.global_labels()[indices]
    tasks = dataset.tasks[indices]
    accuracy, counts = {}, {}
    for t, name in enumerate(TASKS):
        mask = tasks == t
        counts[name] = int(mask.sum())
        if mask.any():
            accuracy[name] = float(np.mean(predictions[mask] == targets[mask]))
    jax.block_until_ready(compiled(*example))  # warm-up
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(timing_batches):
            out = compiled(*example)
        jax.block_until_ready(out)
        best = min(best, time.perf_counter() - started)
    return {"accuracy": accuracy, "examples": counts,
            "mean_accuracy": float(np.mean(list(accuracy.values()))),
            "flops_per_image": float(cost["flops"]) / batch_size,
            "params": count_params(model),
            "images_per_sec": timing_batches * batch_size / best}


def _has_task_router(model: nnx.Module) -> bool:
    from worldsim.nn import TaskMoeMlp
    return any(isinstance(m, TaskMoeMlp) for _, m in nnx.iter_modules(model))


def evaluate_model(model: nnx.Module, dataset: VisionDataset, *, batch_size: int = 64,
                   capacity_factor: float | None = None, batch_priority: bool | None = None,
                   task_networks: bool = False, max_examples: int = 0,
                   timing_batches: int = 5) -> dict[str, Any]:
    """``measure`` on (the first ``max_examples`` of each task of) ``dataset``, after applying
    the MoE inference options; with ``task_networks`` (task-routed MoE only) also each task's
    extracted network on that task's examples, next to the full model on the same examples."""
    if task_networks and not _has_task_router(model):
        raise ValueError("task_networks needs a task-routed MoE model (model.moe.router='task')")
    indices = np.concatenate([dataset.task_indices(t)[: max_examples or None]
                              for t in range(len(TASKS))])
    if capacity_factor is not None or batch_priority is not None:
        model = with_moe_inference(model, capacity_factor, batch_priority)
    result = measure(model, dataset, indices, batch_size, timing_batches)
    result.update(capacity_factor=capacity_factor, batch_priority=batch_priority)
    if task_networks:
        result["task_networks"] = {}
        for t, name in enumerate(TASKS):
            own = dataset.task_indices(t)[: max_examples or None]
            result["task_networks"][name] = {
                "full": measure(model, dataset, own, batch_size, timing_batches),
                "extracted": measure(extract_task_network(model, t), dataset, own, batch_size,
                                     timing_batches)}
    return result


def evaluate_vision_model(workdir: str | Path, *, split: str = "eval", step: int | None = None,
                          **options) -> dict[str, Any]:
    """``evaluate_model`` of the run in ``workdir`` on its held-out split (``"eval"``: the
    val_unseen houses and held-out BlockSort seeds) or ``"train"``. Options: ``batch_size``
    (default ``config.eval.batch_size``), ``capacity_factor``, ``batch_priority``,
    ``task_networks``, ``max_examples``, ``timing_batches``."""
    model, config = load_vision_model(workdir, step)
    dataset = load_split(config, split, progress=True)
    options.setdefault("batch_size", config.eval.batch_size)
    result = evaluate_model(model, dataset, **options)
    return {"workdir": str(workdir), "split": split, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m worldsim.agents.vision.training",
        description="Evaluate a trained vision classifier (accuracy per task, FLOPs, params, "
                    "images/s) on its held-out split.")
    parser.add_argument("workdir")
    parser.add_argument("--split", default="eval", choices=("eval", "train"))
    parser.add_argument("--capacity", type=float, nargs="+", default=None, metavar="CF",
                        help="token-MoE inference capacity factor(s); several give a sweep")
    parser.add_argument("--priority", choices=("both", "on", "off"), default=None,
                        help="batch priority routing at inference (both: vanilla and BPR)")
    parser.add_argument("--task-networks", action="store_true",
                        help="also evaluate each task's extracted network (task-routed MoE)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--max-examples", type=int, default=0, help="per task; 0: all")
    parser.add_argument("--out", default=None, help="write the results JSON here")
    args = parser.parse_args(argv)
    capacities = args.capacity or [None]
    priorities = {None: [None], "on": [True], "off": [False], "both": [False, True]}[args.priority]
    options = {"task_networks": args.task_networks, "max_examples": args.max_examples}
    if args.batch_size:
        options["batch_size"] = args.batch_size
    results = []
    try:
        for cf in capacities:
            for bpr in priorities:
                results.append(evaluate_vision_model(args.workdir, split=args.split,
                                                     capacity_factor=cf, batch_priority=bpr,
                                                     **options))
                r = results[-1]
                print(json.dumps({k: r[k] for k in ("capacity_factor", "batch_priority",
                                                    "accuracy", "flops_per_image", "params",
                                                    "images_per_sec")}), flush=True)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = results[0] if len(results) == 1 else results
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1))
    else:
        print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
