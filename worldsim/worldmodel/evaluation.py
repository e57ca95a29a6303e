"""Evaluation of a trained world model along held-out walks, per prediction step.

For each walk the memory starts with the real panorama of viewpoint 0 ("observed"); then for
k = 1 … K the memory is re-projected at viewpoint k, the method predicts the full panorama, and
(autoregressively) its prediction of the pixels the guidance did not cover is added to its own
memory as "predicted". Step k is k viewpoints (about 2 m each in these houses) from the last
real observation.

Methods:

* ``model``: the world model (prior mean, ``sample=False``), semantics = argmax;
* ``model_paste``: the same prediction with the guidance pasted over it where the guidance
  has a value (Pathdreamer's ``use_projected_pathdreamer_rgb``, for all three modalities);
* ``guidance``: the re-projected real observation alone (void / 0 m / black where unseen);
* ``nearest``: nearest-neighbour in-painting of the guidance (every unseen pixel takes the
  values of the nearest seen pixel, the panorama wrapping around), autoregressive as well.

Metrics, pooled over the walks per step (pixels whose true class is void or whose true depth
is invalid are excluded where that matters):

* ``miou``: per-class IoU over the pooled confusion matrix, averaged over classes with a
  non-empty union; ``joint_iou``: Σ intersections / Σ unions over all classes (what
  Pathdreamer's released ``compute_sequence_iou`` computes, a frequency-weighted IoU);
  ``acc``: pixel accuracy; ``acc_unseen`` / ``acc_seen``: accuracy on the pixels the
  re-projected real observation does not / does cover (the same pixels for every method;
  ``seen_fraction`` is the covered share);
* ``absrel``: mean |d̂ − d| / d and ``rmse`` (metres) over pixels with 0 < d < 10 m;
  ``absrel_unseen`` / ``absrel_seen`` on the unseen / covered pixels (covered pixels are not
  exact: the points of a 1-pixel-per-point splat seen from a new viewpoint leave gaps through
  which farther points show);
* ``psnr`` (dB, peak 1.0, capped at 100 for identical images) and ``ssim`` (Gaussian window
  11, σ 1.5, wrapped along the width), averaged over panoramas;
* model only, over ``samples`` prior samples (``sample=True``) and the unseen pixels:
  ``div_rgb_l1`` mean pairwise RGB L1 ([0, 1] units), ``div_semantic`` mean pairwise fraction
  of differing classes, ``div_depth_l1`` mean pairwise depth L1 (metres).

    >>> result = evaluate_world_model("runs/worldmodel_cpu", episodes=8, split="val_unseen",
    ...                               steps=4, out_dir="runs/worldmodel_cpu/eval")
    >>> print(format_table(result))

Writes ``worldmodel_eval.json`` (the table and settings), ``strip_<i>.png`` (per step, one
block of rows RGB / semantics / depth and columns truth | guidance | nearest | model) and
``dream_<i>.gif`` (the dreamed walk: truth | guidance | model per viewpoint).
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

from worldsim.envs.navigation.semantics import NUM_CLASSES
from worldsim.worldmodel.data import (MAX_RANGE, Trajectory, guidance_options, reproject_memory,
                                      scene_trajectories, trajectories_from_dataset)
from worldsim.worldmodel.memory import PointCloudMemory

METHODS = ("model", "model_paste", "guidance", "nearest")
PSNR_CAP = 100.0
RESULT_FILE = "worldmodel_eval.json"


# --- metrics ----------------------------------------------------------------------------------

def semantic_confusion(prediction: np.ndarray, target: np.ndarray, where: np.ndarray | None = None,
                       num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(C, C) int64 counts of (true class, predicted class) over pixels whose true class is not
    void (0) and, if given, where ``where`` is True."""
    valid = np.asarray(target) > 0
    if where is not None:
        valid &= np.asarray(where, bool)
    t = np.asarray(target)[valid].astype(np.int64)
    p = np.clip(np.asarray(prediction)[valid].astype(np.int64), 0, num_classes - 1)
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_from_confusion(confusion: np.ndarray) -> dict[str, float]:
    """``miou`` (mean over classes with a non-empty union), ``joint_iou`` (Σ I / Σ U) and
    ``acc`` (trace / total); NaN when the matrix is empty."""
    confusion = np.asarray(confusion, np.float64)
    intersection = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - intersection
    present = union > 0
    total = confusion.sum()
    return {"miou": float(np.mean(intersection[present] / union[present])) if present.any() else float("nan"),
            "joint_iou": float(intersection.sum() / union.sum()) if union.sum() else float("nan"),
            "acc": float(intersection.sum() / total) if total else float("nan")}


def depth_error_sums(prediction: np.ndarray, target: np.ndarray, where: np.ndarray | None = None,
                     max_range: float = MAX_RANGE) -> np.ndarray:
    """[Σ |d̂ − d| / d, Σ (d̂ − d)², count] over pixels with 0 < d < max_range (and ``where``)."""
    target = np.asarray(target, np.float64)
    valid = (target > 0) & (target < max_range)
    if where is not None:
        valid &= np.asarray(where, bool)
    error = np.asarray(prediction, np.float64)[valid] - target[valid]
    return np.array([np.sum(np.abs(error) / target[valid]), np.sum(error ** 2), valid.sum()], np.float64)


def depth_errors(prediction: np.ndarray, target: np.ndarray, max_range: float = MAX_RANGE) -> dict[str, float]:
    """``absrel`` and ``rmse`` (metres) over pixels with 0 < target < max_range."""
    return _depth_summary(depth_error_sums(prediction, target, max_range=max_range))


def _depth_summary(sums: np.ndarray) -> dict[str, float]:
    absrel, squared, count = sums
    if not count:
        return {"absrel": float("nan"), "rmse": float("nan")}
    return {"absrel": float(absrel / count), "rmse": float(np.sqrt(squared / count))}


def psnr(prediction: np.ndarray, target: np.ndarray, max_value: float = 1.0, cap: float = PSNR_CAP) -> float:
    """Peak signal-to-noise ratio in dB, ``cap`` when the images are identical."""
    mse = np.mean((np.asarray(prediction, np.float64) - np.asarray(target, np.float64)) ** 2)
    if mse == 0:
        return float(cap)
    return float(min(cap, 10.0 * np.log10(max_value ** 2 / mse)))


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    window = np.exp(-0.5 * (x / sigma) ** 2)
    return window / window.sum()


def _gaussian_filter(image: np.ndarray, window: np.ndarray, wrap: bool) -> np.ndarray:
    """Separable filter of (H, W, C): 'valid' along H, wrapped (or 'valid') along W."""
    half = len(window) // 2
    if wrap:
        image = np.concatenate([image[:, -half:], image, image[:, :half]], axis=1) if half else image
    rows = np.tensordot(sliding_window_view(image, len(window), axis=0), window, axes=([-1], [0]))
    return np.tensordot(sliding_window_view(rows, len(window), axis=1), window, axes=([-1], [0]))


def ssim(prediction: np.ndarray, target: np.ndarray, max_value: float = 1.0, window: int = 11,
         sigma: float = 1.5, wrap: bool = True) -> float:
    """Mean structural similarity (Wang et al. 2004) of two (H, W) or (H, W, C) images with a
    Gaussian window; channels are averaged. ``wrap``: the window wraps around the width (360°
    panoramas), rows are not padded. Needs H ≥ ``window`` (and W ≥ it unless wrapped)."""
    a, b = np.asarray(prediction, np.float64), np.asarray(target, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"ssim needs images of one shape, got {a.shape} and {b.shape}.")
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    if a.shape[0] < window or (not wrap and a.shape[1] < window):
        raise ValueError(f"images of {a.shape[0]}×{a.shape[1]} are smaller than the {window}-pixel window.")
    g = _gaussian_window(window, sigma)
    c1, c2 = (0.01 * max_value) ** 2, (0.03 * max_value) ** 2
    mu_a, mu_b = _gaussian_filter(a, g, wrap), _gaussian_filter(b, g, wrap)
    var_a = _gaussian_filter(a * a, g, wrap) - mu_a ** 2
    var_b = _gaussian_filter(b * b, g, wrap) - mu_b ** 2
    cov = _gaussian_filter(a * b, g, wrap) - mu_a * mu_b
    value = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(np.mean(value))


def sample_diversity(samples: list[dict[str, np.ndarray]], where: np.ndarray) -> dict[str, float]:
    """Mean over pairs of samples (dicts with rgb [0, 1], semantic, depth metres) of RGB L1,
    fraction of differing classes and depth L1 over the pixels where ``where`` is True."""
    where = np.asarray(where, bool)
    pairs = [(i, j) for i in range(len(samples)) for j in range(i + 1, len(samples))]
    if not pairs or not where.any():
        return {"div_rgb_l1": float("nan"), "div_semantic": float("nan"), "div_depth_l1": float("nan")}
    rgb = np.mean([np.abs(samples[i]["rgb"][where] - samples[j]["rgb"][where]).mean() for i, j in pairs])
    semantic = np.mean([(samples[i]["semantic"][where] != samples[j]["semantic"][where]).mean() for i, j in pairs])
    depth = np.mean([np.abs(samples[i]["depth"][where] - samples[j]["depth"][where]).mean() for i, j in pairs])
    return {"div_rgb_l1": float(rgb), "div_semantic": float(semantic), "div_depth_l1": float(depth)}


# --- baselines --------------------------------------------------------------------------------

def nearest_fill(guidance: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every pixel with mask 0 takes rgb, semantic and depth of the nearest pixel with mask 1
    (Euclidean in pixels, the panorama wrapping around along the width). Returns rgb uint8,
    semantic uint8, depth float32 and mask (all True, or all False when nothing was seen:
    then the guidance is returned unchanged)."""
    mask = np.asarray(guidance["mask"], bool)
    if not mask.any():
        return {key: np.asarray(value).copy() for key, value in guidance.items()}
    width = mask.shape[1]
    tiled = np.concatenate([mask, mask, mask], axis=1)  # so the nearest may lie across the seam
    _, (rows, cols) = ndimage.distance_transform_edt(~tiled, return_indices=True)
    rows, cols = rows[:, width:2 * width], cols[:, width:2 * width] % width
    return {"rgb": np.asarray(guidance["rgb"])[rows, cols], "semantic": np.asarray(guidance["semantic"])[rows, cols],
            "depth": np.asarray(guidance["depth"])[rows, cols], "mask": np.ones_like(mask)}


# --- running the model ------------------------------------------------------------------------

def make_predictor(model: nnx.Module):
    """``predict(guidance batch, key, sample) -> dict of numpy`` (rgb [0, 1], semantic int,
    depth metres), jit-compiled once per batch size."""
    graphdef, state = nnx.split(model)

    @functools.partial(jax.jit, static_argnames="sample")
    def run(state, guidance, key, sample):
        outputs, _ = nnx.merge(graphdef, state)(guidance, key=key, sample=sample)
        return {"rgb": outputs["rgb"], "semantic": outputs["semantic"], "depth": outputs["depth"]}

    def predict(guidance: dict[str, np.ndarray], key: jax.Array, sample: bool) -> dict[str, np.ndarray]:
        batch = {k: jnp.asarray(v) for k, v in guidance.items()}
        return {k: np.asarray(v) for k, v in run(state, batch, key, sample).items()}

    return predict


def _batched(guidance: dict[str, np.ndarray], copies: int) -> dict[str, np.ndarray]:
    return {k: np.repeat(np.asarray(v)[None], copies, axis=0) for k, v in guidance.items()}


def _as_observation(prediction: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A prediction in observation dtypes: rgb uint8, semantic uint8, depth float32 metres."""
    rgb = np.asarray(prediction["rgb"])
    if rgb.dtype != np.uint8:
        rgb = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
    return {"rgb": rgb, "semantic": np.asarray(prediction["semantic"]).astype(np.uint8),
            "depth": np.asarray(prediction["depth"], np.float32)}


def _paste(prediction: dict[str, np.ndarray], guidance: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    mask = np.asarray(guidance["mask"], bool)
    return {"rgb": np.where(mask[..., None], guidance["rgb"], prediction["rgb"]),
            "semantic": np.where(mask, guidance["semantic"], prediction["semantic"]),
            "depth": np.where(mask, guidance["depth"], prediction["depth"])}


class _Accumulator:
    """Pooled sums of one method at one step."""

    def __init__(self):
        self.confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
        self.confusion_unseen = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
        self.confusion_seen = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
        self.depth, self.depth_unseen, self.depth_seen = np.zeros(3), np.zeros(3), np.zeros(3)
        self.psnr, self.ssim, self.diversity, self.seen = [], [], [], []

    def add(self, prediction: dict[str, np.ndarray], truth: dict[str, np.ndarray], unseen: np.ndarray) -> None:
        self.confusion += semantic_confusion(prediction["semantic"], truth["semantic"])
        self.confusion_unseen += semantic_confusion(prediction["semantic"], truth["semantic"], unseen)
        self.confusion_seen += semantic_confusion(prediction["semantic"], truth["semantic"], ~unseen)
        self.depth += depth_error_sums(prediction["depth"], truth["depth"])
        self.depth_unseen += depth_error_sums(prediction["depth"], truth["depth"], unseen)
        self.depth_seen += depth_error_sums(prediction["depth"], truth["depth"], ~unseen)
        self.seen.append(float(np.mean(~unseen)))
        rgb, true_rgb = prediction["rgb"].astype(np.float64) / 255.0, truth["rgb"].astype(np.float64) / 255.0
        self.psnr.append(psnr(rgb, true_rgb))
        height = rgb.shape[0]
        self.ssim.append(ssim(rgb, true_rgb, window=min(11, height if height % 2 else height - 1)))

    def summary(self) -> dict[str, float]:
        out = iou_from_confusion(self.confusion)
        out["acc_unseen"] = iou_from_confusion(self.confusion_unseen)["acc"]
        out["acc_seen"] = iou_from_confusion(self.confusion_seen)["acc"]
        out.update(_depth_summary(self.depth))
        out["absrel_unseen"] = _depth_summary(self.depth_unseen)["absrel"]
        out["absrel_seen"] = _depth_summary(self.depth_seen)["absrel"]
        out["seen_fraction"] = float(np.mean(self.seen))
        out["psnr"], out["ssim"] = float(np.mean(self.psnr)), float(np.mean(self.ssim))
        if self.diversity:
            for key in self.diversity[0]:
                out[key] = float(np.nanmean([d[key] for d in self.diversity]))
        return out


# --- pictures ---------------------------------------------------------------------------------

def _strip(columns: list[dict[str, np.ndarray]]) -> np.ndarray:
    from worldsim.eval.navigation_plots import panorama_strip

    return panorama_strip([{k: c[k] for k in ("rgb", "semantic", "depth")} for c in columns],
                          max_depth=MAX_RANGE)


def _stack(images: list[np.ndarray], gap: int = 8) -> np.ndarray:
    width = max(i.shape[1] for i in images)
    rows = []
    for index, image in enumerate(images):
        if index:
            rows.append(np.full((gap, width, 3), 255, np.uint8))
        rows.append(np.pad(image, ((0, 0), (0, width - image.shape[1]), (0, 0)), constant_values=255))
    return np.concatenate(rows, axis=0)


def _write_png(image: np.ndarray, path: Path) -> None:
    import imageio.v3 as iio

    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    iio.imwrite(tmp, image, extension=".png")
    os.replace(tmp, path)


# --- the evaluation ---------------------------------------------------------------------------

def _rollout(predict, trajectory: Trajectory, steps: int, samples: int, key: jax.Array,
             accumulators: list[dict[str, _Accumulator]], voxel_size: float | None, options: dict):
    """Runs every method along one walk; returns the frames for the pictures. ``options``: the
    guidance settings (``reproject_memory``), the same for every method."""
    height, width = trajectory.size
    capacity = (steps + 1) * height * width
    first = trajectory.frame(0)
    memories = {name: PointCloudMemory(voxel_size=voxel_size, max_range=MAX_RANGE)
                for name in ("guidance", "model", "nearest")}
    for memory in memories.values():
        memory.add(first["rgb"], first["semantic"], first["depth"], first["position"])
    pictures = []
    for k in range(1, steps + 1):
        truth, position = trajectory.frame(k), trajectory.position[k]
        guidance = {n: reproject_memory(m, position, height, width, capacity, **options)
                    for n, m in memories.items()}
        unseen = ~guidance["guidance"]["mask"]
        step_key = jax.random.fold_in(key, k)
        model = _as_observation({k2: v[0] for k2, v in predict(_batched(guidance["model"], 1), step_key,
                                                               False).items()})
        predictions = {"model": model, "model_paste": _paste(model, guidance["model"]),
                       "guidance": guidance["guidance"], "nearest": nearest_fill(guidance["nearest"])}
        for name, prediction in predictions.items():
            accumulators[k - 1][name].add(prediction, truth, unseen)
        if samples > 1:
            drawn = predict(_batched(guidance["model"], samples), step_key, True)
            drawn = [{key_: value[i] for key_, value in drawn.items()} for i in range(samples)]
            accumulators[k - 1]["model"].diversity.append(sample_diversity(drawn, ~guidance["model"]["mask"]))
        for name in ("model", "nearest"):  # autoregressive: predictions of unseen pixels enter memory
            filled = predictions[name]
            memories[name].add(filled["rgb"], filled["semantic"], filled["depth"], position,
                               mask=~guidance[name]["mask"], source="predicted")
        pictures.append({"truth": truth, "guidance": guidance["model"], "nearest": predictions["nearest"],
                         "model": model})
    return pictures


def evaluate_world_model(workdir: str | os.PathLike, episodes: int = 8, split: str = "val_unseen",
                         steps: int = 4, out_dir: str | os.PathLike | None = None, *,
                         dataset: str | os.PathLike | None = None, samples: int = 3, seed: int = 0,
                         strips: int = 4, videos: int = 2, progress: bool = True,
                         occlusion_window: int | None = None, occlusion_tolerance: float | None = None
                         ) -> dict[str, Any]:
    """Per-step metrics of the world model in ``workdir`` and of the two baselines.

    episodes: number of walks; split: houses they are rendered from (``steps + 1`` viewpoints
    along a shortest path, drawn with ``seed``), unless ``dataset`` names a recorded navigation
    dataset, whose first ``episodes`` episodes with ≥ steps + 1 observations are used instead;
    steps: K, prediction steps per walk; out_dir: where files go (default
    ``workdir/eval_worldmodel``); samples: prior samples for the diversity metrics (≤ 1: none);
    strips / videos: how many walks get a PNG strip / a GIF; occlusion_window /
    occlusion_tolerance: the guidance's occlusion filter for every method, None = the run's
    ``config.guidance`` (``data.guidance_options``; off for runs that predate it).
    Returns (and writes as JSON) the settings and ``table``: one row per step with
    ``distance_m`` (mean straight-line distance from viewpoint 0) and per method its metrics.
    """
    from tqdm.auto import tqdm

    from worldsim.eval.video import write_video
    from worldsim.worldmodel.training import load_world_model

    if steps < 1 or episodes < 1:
        raise ValueError(f"steps and episodes must be ≥ 1, got steps={steps}, episodes={episodes}.")
    started = time.perf_counter()
    model, meta, config = load_world_model(workdir)
    height, width = meta["panorama_size"]
    options = guidance_options(config)
    if occlusion_window is not None:
        options["occlusion_window"] = int(occlusion_window)
    if occlusion_tolerance is not None:
        options["occlusion_tolerance"] = float(occlusion_tolerance)
    if dataset is not None:
        trajectories = trajectories_from_dataset(dataset, min_frames=steps + 1)[:episodes]
        if trajectories[0].size != (height, width):
            raise ValueError(f"{dataset} holds {trajectories[0].size} panoramas; the model was trained "
                             f"on {height}×{width}.")
        source = str(dataset)
    else:
        trajectories = scene_trajectories(split, episodes, steps + 1, height, width, seed=seed)
        source = f"split {split}"
    trajectories = [t for t in trajectories if len(t) >= steps + 1]
    if not trajectories:
        raise ValueError(f"no walk of {source} has {steps + 1} viewpoints.")
    out_dir = Path(out_dir) if out_dir is not None else Path(workdir) / "eval_worldmodel"
    out_dir.mkdir(parents=True, exist_ok=True)
    predict = make_predictor(model)
    accumulators = [{name: _Accumulator() for name in METHODS} for _ in range(steps)]
    distances = np.zeros((len(trajectories), steps))
    key = jax.random.key(seed)
    written = []
    for index, trajectory in enumerate(tqdm(trajectories, desc="world-model eval", disable=not progress)):
        pictures = _rollout(predict, trajectory, steps, samples, jax.random.fold_in(key, index),
                            accumulators, config.data.voxel_size, options)
        distances[index] = np.linalg.norm(trajectory.position[1:steps + 1] - trajectory.position[0], axis=1)
        if index < strips:
            blocks = [_strip([p["truth"], p["guidance"], p["nearest"], p["model"]]) for p in pictures]
            path = out_dir / f"strip_{index}.png"
            _write_png(_stack(blocks), path)
            written.append(str(path))
        if index < videos:
            first = trajectory.frame(0)
            frames = [_strip([first, first, first])] + [_strip([p["truth"], p["guidance"], p["model"]])
                                                       for p in pictures]
            written.append(str(write_video(frames, out_dir / f"dream_{index}.gif", fps=2)))
    table = [{"step": k + 1, "distance_m": float(distances[:, k].mean()),
              **{name: accumulators[k][name].summary() for name in METHODS}} for k in range(steps)]
    result = {"workdir": str(workdir), "checkpoint_step": int(meta["step"]), "source": source,
              "n_episodes": len(trajectories), "episodes": [t.name for t in trajectories],
              "steps": steps, "samples": samples, "seed": seed, "panorama_size": [height, width],
              "guidance": options,
              "methods": list(METHODS), "strip_columns": ["truth", "guidance", "nearest", "model"],
              "table": table, "files": written, "eval_s": time.perf_counter() - started}
    path = out_dir / RESULT_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, path)
    return result


def format_table(result: dict[str, Any], metrics: tuple[str, ...] = (
        "miou", "acc", "acc_unseen", "absrel", "rmse", "absrel_unseen", "psnr", "ssim")) -> str:
    """A plain-text table: one row per (step, method)."""
    lines = [f"{'step':>4} {'dist_m':>6} {'method':<12}" + "".join(f"{m:>14}" for m in metrics)
             + f"{'div_sem':>10}{'div_rgb':>10}"]
    for row in result["table"]:
        for name in result["methods"]:
            values = row[name]
            lines.append(f"{row['step']:>4} {row['distance_m']:>6.2f} {name:<12}"
                         + "".join(f"{values[m]:>14.4f}" for m in metrics)
                         + f"{values.get('div_semantic', float('nan')):>10.4f}"
                         + f"{values.get('div_rgb_l1', float('nan')):>10.4f}")
    return "\n".join(lines)
