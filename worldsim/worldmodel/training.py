"""The world model's ``TrainTask`` for the shared loop, and loading a trained one back.

    worldsim train --config configs/worldmodel/cpu.py --workdir runs/worldmodel_cpu

``WorldModel`` holds the structure generator (stage 1), the image generator (stage 2) and, when
``config.model.gan`` is on, a patch discriminator. ``config.stage`` picks what is trained:

* ``"joint"``: both generators in one run (the default);
* ``"structure"``: stage 1 only (the image generator gets no gradient and does not change);
* ``"image"``: stage 2 only, optionally starting from the structure generator of another run
  (``config.init_structure_from`` = its workdir), which is then left unchanged.

Losses (weights in ``config.loss``): semantic cross-entropy over pixels whose true class is not
void (``lambda_semantic``; with ``class_balance`` = a > 0 each pixel is weighted by its true
class's training-set frequency to the power −a, see ``class_weights``), L1 of depth / 10 m
over pixels with valid true depth, 0 < d < 10 m (``lambda_depth``), KL(posterior ‖ prior) as the mean over latent elements (``lambda_kld``),
RGB L1 (``lambda_rgb``), and with ``model.gan`` the hinge-GAN generator loss (``lambda_gan``).
The image generator is conditioned on the TRUE structure during training
(``image_condition="target"``, teacher forcing as in two-stage training) or on the structure
generator's prediction (``"predicted"``, one-hot of its argmax and its depth, gradient stopped).

The GAN in a one-optimiser loop: the discriminator's hinge loss is added to the total with the
generated image's gradient stopped, and the generator's loss is computed through a copy of the
discriminator whose parameters have their gradient stopped. Generator and discriminator
parameters are disjoint, so one gradient step of the sum is a simultaneous step of both players.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from worldsim.envs.navigation.semantics import NUM_CLASSES
from worldsim.train.loop import TrainTask, restore_trained_model
from worldsim.worldmodel.data import (GuidanceBatches, guidance_options, scene_trajectories,
                                      trajectories_from_dataset)
from worldsim.worldmodel.image import (ImageGenerator, PatchDiscriminator, hinge_d_loss, hinge_g_loss,
                                       structure_condition)
from worldsim.worldmodel.structure import DEPTH_SCALE, StructureGenerator

STAGES = ("joint", "structure", "image")
IMAGE_CONDITIONS = ("target", "predicted")


class WorldModel(nnx.Module):
    """Structure generator → image generator (+ optional discriminator, training only)."""

    def __init__(self, structure: StructureGenerator, image: ImageGenerator,
                 discriminator: PatchDiscriminator | None = None):
        self.structure, self.image, self.discriminator = structure, image, discriminator

    def __call__(self, guidance: dict[str, jax.Array], target: dict[str, jax.Array] | None = None, *,
                 key: jax.Array | None = None, sample: bool = True, z: jax.Array | None = None
                 ) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
        """guidance: ``rgb`` (B, H, W, 3) uint8 or [0, 1] floats, ``semantic`` (B, H, W) ids,
        ``depth`` (B, H, W) metres, ``mask`` (B, H, W); other arguments as
        ``StructureGenerator``. Returns (outputs, aux): outputs ``semantic_logits``,
        ``semantic`` (B, H, W) int32 argmax, ``depth`` metres, ``rgb`` (B, H, W, 3) in [0, 1]
        rendered from the predicted structure; aux from the structure generator."""
        structure, aux = self.structure(guidance, target, key=key, sample=sample, z=z)
        semantic = jnp.argmax(structure["semantic_logits"], axis=-1).astype(jnp.int32)
        rgb, _ = self.image(semantic, structure["depth"], guidance)
        return {**structure, "semantic": semantic, "rgb": rgb}, aux


def build_world_model(config: ml_collections.ConfigDict, meta: dict[str, Any] | None = None) -> WorldModel:
    """A freshly initialised ``WorldModel`` of the shapes in ``config.model`` (seed
    ``config.seed``); ``meta`` is accepted for ``restore_trained_model`` and unused."""
    m = config.model
    rngs = nnx.Rngs(config.seed)
    structure = StructureGenerator(widths=tuple(m.structure_widths), blocks=m.structure_blocks,
                                   z_dim=m.z_dim, latent_hidden=m.latent_hidden, circular=m.circular,
                                   depth_scale=DEPTH_SCALE, inpaint_guidance=bool(m.get("inpaint_guidance", False)),
                                   rngs=rngs)
    image = ImageGenerator(widths=tuple(m.image_widths), hidden=m.image_hidden, circular=m.circular,
                           depth_scale=DEPTH_SCALE, rngs=rngs)
    discriminator = (PatchDiscriminator(width=m.disc_width, layers=m.disc_layers, scales=m.disc_scales,
                                        circular=m.circular, rngs=rngs) if m.gan else None)
    return WorldModel(structure, image, discriminator)


# --- losses -----------------------------------------------------------------------------------

def class_weights(labels, exponent: float, max_weight: float = 10.0) -> np.ndarray:
    """(NUM_CLASSES,) float32 weights frequency^(−exponent) of the non-void classes in
    ``labels`` (an array of class ids of any shape, or a list of such arrays: counted one by
    one, never concatenated), scaled so that the mean weight over those pixels is 1, then
    clipped to ``max_weight``. Classes that never occur get ``max_weight``; void gets 0 (it is
    never a target). exponent 0 gives all ones."""
    if exponent < 0:
        raise ValueError(f"class_balance={exponent} must be ≥ 0 (0 = unweighted, 0.5 = inverse square root).")
    arrays = [labels] if isinstance(labels, np.ndarray) else list(labels)
    counts = sum(np.bincount(np.ravel(a), minlength=NUM_CLASSES)[:NUM_CLASSES] for a in arrays).astype(np.float64)
    counts[0] = 0.0
    if counts.sum() == 0:
        raise ValueError("class_weights: no non-void pixel in the labels.")
    frequency = counts / counts.sum()
    weights = np.where(frequency > 0, np.maximum(frequency, 1e-12) ** -float(exponent), 0.0)
    weights /= (frequency * weights).sum()
    weights = np.where(frequency > 0, np.minimum(weights, max_weight), max_weight)
    weights[0] = 0.0
    return weights.astype(np.float32)


def semantic_cross_entropy(logits: jax.Array, labels: jax.Array, weights: jax.Array | None = None
                           ) -> tuple[jax.Array, jax.Array]:
    """(mean cross-entropy, pixel accuracy) over pixels whose true class is not void (0).
    ``weights``: optional (NUM_CLASSES,) per-class weights of the cross-entropy (a weighted
    mean); the accuracy is never weighted."""
    labels = labels.astype(jnp.int32)
    valid = (labels > 0).astype(jnp.float32)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]
    count = jnp.maximum(valid.sum(), 1.0)
    accuracy = ((jnp.argmax(logits, -1) == labels) * valid).sum() / count
    pixel_weight = valid if weights is None else valid * jnp.asarray(weights)[labels]
    return (nll * pixel_weight).sum() / jnp.maximum(pixel_weight.sum(), 1e-6), accuracy


def masked_depth_l1(prediction: jax.Array, target: jax.Array, max_range: float = DEPTH_SCALE) -> jax.Array:
    """Mean |prediction − target| / max_range (metres → [0, 1] units) over 0 < target < max_range."""
    valid = ((target > 0) & (target < max_range)).astype(jnp.float32)
    return (jnp.abs(prediction - target) * valid).sum() / jnp.maximum(valid.sum(), 1.0) / max_range


def _frozen(module: nnx.Module) -> nnx.Module:
    """A copy of ``module`` whose parameters carry no gradient."""
    graphdef, state = nnx.split(module)
    return nnx.merge(graphdef, jax.tree.map(jax.lax.stop_gradient, state))


def guidance_of(batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    return {"rgb": batch["guidance_rgb"], "semantic": batch["guidance_semantic"],
            "depth": batch["guidance_depth"], "mask": batch["guidance_mask"]}


def make_loss_fn(config: ml_collections.ConfigDict, semantic_weights: np.ndarray | None = None):
    """``(model, batch, key) -> (loss, metrics)`` for the shared loop (batches of
    ``GuidanceBatches``); ``semantic_weights``: per-class weights of the cross-entropy
    (``class_weights``), None for unweighted."""
    stage, condition, lc = config.stage, config.image_condition, config.loss
    if stage not in STAGES:
        raise ValueError(f"stage={stage!r} is not one of {STAGES}.")
    if condition not in IMAGE_CONDITIONS:
        raise ValueError(f"image_condition={condition!r} is not one of {IMAGE_CONDITIONS}.")
    gan = bool(config.model.gan)

    def loss_fn(model: WorldModel, batch: dict[str, jax.Array], key: jax.Array):
        guidance = guidance_of(batch)
        target = {"semantic": batch["target_semantic"], "depth": batch["target_depth"]}
        metrics, loss = {}, jnp.zeros((), jnp.float32)
        needs_structure = stage != "image" or condition == "predicted"
        if needs_structure:
            structure, aux = model.structure(guidance, target, key=key, sample=True)
            ce, accuracy = semantic_cross_entropy(structure["semantic_logits"], target["semantic"],
                                                  semantic_weights)
            depth_l1 = masked_depth_l1(structure["depth"], target["depth"])
            metrics.update(semantic_ce=ce, semantic_acc=accuracy, depth_l1_m=depth_l1 * DEPTH_SCALE,
                           kl=aux["kl"], kl_sum=aux["kl_sum"])
            if stage != "image":
                loss = loss + lc.lambda_semantic * ce + lc.lambda_depth * depth_l1 + lc.lambda_kld * aux["kl"]
        if stage != "structure":
            if condition == "target":
                semantic, depth = target["semantic"], target["depth"]
            else:
                semantic = jax.lax.stop_gradient(jnp.argmax(structure["semantic_logits"], -1))
                depth = jax.lax.stop_gradient(structure["depth"])
            rgb, _ = model.image(semantic, depth, guidance)
            true_rgb = batch["target_rgb"].astype(jnp.float32) / 255.0
            rgb_l1 = jnp.mean(jnp.abs(rgb - true_rgb))
            metrics["rgb_l1"] = rgb_l1
            loss = loss + lc.lambda_rgb * rgb_l1
            if gan:
                cond = structure_condition(semantic, depth, DEPTH_SCALE)
                g_loss = hinge_g_loss(_frozen(model.discriminator)(rgb, cond))
                d_loss = hinge_d_loss(model.discriminator(true_rgb, cond),
                                      model.discriminator(jax.lax.stop_gradient(rgb), cond))
                metrics.update(gan_g=g_loss, gan_d=d_loss)
                loss = loss + lc.lambda_gan * g_loss + d_loss
        return loss, metrics

    return loss_fn


# --- the task ---------------------------------------------------------------------------------

def _trajectories(config: ml_collections.ConfigDict):
    data = config.data
    height, width = (int(v) for v in data.panorama_size)
    if config.dataset:
        if not Path(config.dataset).exists():
            raise FileNotFoundError(
                f"no dataset at {config.dataset}; record one with: worldsim collect --env "
                f"worldsim/IndoorNav-v0 --policy oracle --episodes 300 --env-kwargs "
                f"'{{\"split\": \"train\", \"panorama_size\": [{height}, {width}]}}' --out {config.dataset}")
        trajectories = trajectories_from_dataset(config.dataset, max_episodes=data.max_episodes or None)
    else:  # rendered straight from the train houses
        trajectories = scene_trajectories(data.scene_split, data.scene_walks, data.scene_walk_length,
                                          height, width, seed=config.seed)
    if trajectories[0].size != (height, width):
        raise ValueError(f"{config.dataset} holds {trajectories[0].size[0]}×{trajectories[0].size[1]} "
                         f"panoramas, but data.panorama_size is {height}×{width}.")
    return trajectories


def _init_structure(model: WorldModel, workdir: str) -> None:
    source, _, _ = restore_trained_model(workdir, build_world_model)
    nnx.update(model.structure, nnx.state(source.structure))


def make_train_task(config: ml_collections.ConfigDict) -> TrainTask:
    """Loads the walks, builds the batches, the model and the loss."""
    trajectories = _trajectories(config)
    data = config.data
    batches = GuidanceBatches(trajectories, data.batch_size, context_frames=data.context_frames,
                              max_gap=data.max_gap, seed=config.seed, roll=data.roll,
                              voxel_size=data.voxel_size, **guidance_options(config))
    model = build_world_model(config)
    if config.get("init_structure_from"):
        _init_structure(model, config.init_structure_from)
    meta = {"agent": "worldmodel", "panorama_size": [batches.height, batches.width],
            "num_classes": NUM_CLASSES, "depth_scale": DEPTH_SCALE, "num_trajectories": len(trajectories),
            "num_examples": len(batches)}
    balance = float(config.loss.get("class_balance", 0.0))
    weights = None
    if balance:
        weights = class_weights([t.semantic for t in trajectories], balance)
        meta["semantic_class_weights"] = [round(float(w), 4) for w in weights]
    return TrainTask(model=model, loss_fn=make_loss_fn(config, weights), batch_at=batches.batch_at, meta=meta)


def load_world_model(workdir: str | Path, step: int | None = None
                     ) -> tuple[WorldModel, dict[str, Any], ml_collections.ConfigDict]:
    """(model, checkpoint meta, config) of a trained world-model run."""
    model, meta, config = restore_trained_model(workdir, build_world_model, step)
    if meta.get("agent") != "worldmodel":
        raise ValueError(f"{workdir} holds a {meta.get('agent')!r} run, not a world model.")
    return model, meta, config
