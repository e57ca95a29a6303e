"""Stage 1 of the world model: the structure generator (semantics + depth from guidance).

A U-Net over equirectangular panoramas in the spirit of Pathdreamer's ``ResNetSeqInpainter``,
scaled down so that it trains on a CPU at 64×128 (and scaled up by config to the original's
widths). Input: the re-projected guidance — one-hot semantics (``NUM_CLASSES`` = 42) ⊕ range
depth / ``DEPTH_SCALE`` (10 m) ⊕ the guidance mask — 44 channels. Output: per-pixel class logits
(42) and depth = sigmoid(·) × 10 m.

Padding is CIRCULAR along the panorama width (column W−1 neighbours column 0: the panorama
wraps around) and zero along the height. With symmetric padding and nearest up-sampling the
whole network is exactly equivariant to rolling the panorama by a multiple of 2^(levels−1)
columns (tested).

Latent (SVG-LP style, spatial, at the bottleneck resolution): a prior net maps the guidance
bottleneck features to (μ_p, log σ²_p); during training a posterior net maps the ground truth's
bottleneck features (encoder applied to the target, gradient stopped, as in Pathdreamer) ⊕ the
guidance features to (μ_q, log σ²_q). z = μ + σ·ε is concatenated to the bottleneck. The KL term
KL(q ‖ p) is closed form, element-wise. Without a target the prior is used; ``sample=False``
takes the mean instead of a sample, so different keys give different completions only when
sampling.

Deviations from the original, on purpose: GroupNorm instead of SyncBatchNorm (no running
statistics, identical in training and evaluation, works with batch 1); pre-activation residual
blocks with 3×3 convolutions instead of ResNet-50 bottleneck stacks; nearest up-sampling + conv
instead of transposed convolutions; the guidance mask is an explicit input channel.

Optional (``inpaint_guidance=True``, not in Pathdreamer): the input also carries a dense,
pull-push in-painted copy of the guidance's one-hot classes and depth (``pull_push_fill``, 43
more channels), so that even far from any seen pixel the network sees which classes and depths
surround the hole, not only zeros. The in-painting is fixed (no parameters); the network learns
what to keep of it.

    >>> model = StructureGenerator(rngs=nnx.Rngs(0))
    >>> outputs, aux = model(guidance, target, key=jax.random.key(1))
    >>> outputs["semantic_logits"].shape, outputs["depth"].shape, aux["kl"]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from worldsim.envs.navigation.semantics import NUM_CLASSES

DEPTH_SCALE = 10.0  # metres represented by a normalised depth of 1.0 (Pathdreamer's)
INPUT_CHANNELS = NUM_CLASSES + 2  # one-hot semantics, depth / DEPTH_SCALE, mask


# --- padding and convolution ------------------------------------------------------------------

def kernel_init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    """LeCun-normal convolution kernels (std = 1/√fan_in, fan_in = k·k·C_in), drawn by NumPy
    from a generator seeded with the key's bits when the key is concrete, else by JAX.

    Why: XLA compiles a separate threefry sampling program for every kernel shape (~0.5 s
    each on a loaded CPU), which made building a model take 30–45 s; NumPy takes milliseconds.
    Deterministic: the same key gives the same kernel.
    """
    std = 1.0 / np.sqrt(np.prod(shape[:-1]))
    if isinstance(key, jax.core.Tracer):
        return (jax.random.normal(key, shape, dtype) * std).astype(dtype)
    seed = np.asarray(jax.random.key_data(key)).astype(np.uint32).ravel().tolist()
    values = np.random.default_rng(seed).standard_normal(shape) * std
    return jnp.asarray(values, dtype)


def circular_pad(x: jax.Array, height: tuple[int, int], width: tuple[int, int]) -> jax.Array:
    """Pads (B, H, W, C) ``x``: wrap-around along W (``width`` = columns before, after), zeros
    along H (``height`` = rows before, after)."""
    before, after = width
    if before > x.shape[2] or after > x.shape[2]:
        raise ValueError(f"cannot wrap-pad {width} columns onto a panorama only {x.shape[2]} wide.")
    parts = ([x[:, :, x.shape[2] - before:]] if before else []) + [x] + ([x[:, :, :after]] if after else [])
    x = jnp.concatenate(parts, axis=2) if len(parts) > 1 else x
    return jnp.pad(x, ((0, 0), height, (0, 0), (0, 0)))


def _same_padding(kernel: int) -> tuple[int, int]:
    """(before, after) so that a stride-s convolution maps n pixels to ceil(n / s)."""
    before = (kernel - 1) // 2
    return before, kernel - 1 - before


class CircularConv(nnx.Module):
    """A k×k convolution on (B, H, W, C) panoramas, wrap-padded along W and zero-padded along H
    (``circular=False``: zero-padded along both). Stride s maps (H, W) to (⌈H/s⌉, ⌈W/s⌉)."""

    def __init__(self, in_features: int, out_features: int, kernel: int = 3, stride: int = 1, *,
                 rngs: nnx.Rngs, circular: bool = True, use_bias: bool = True):
        self.conv = nnx.Conv(in_features, out_features, (kernel, kernel), strides=stride,
                             padding="VALID", use_bias=use_bias, kernel_init=kernel_init, rngs=rngs)
        self.kernel, self.circular = kernel, circular

    def __call__(self, x: jax.Array) -> jax.Array:
        pad = _same_padding(self.kernel)
        if self.circular:
            x = circular_pad(x, pad, pad)
        else:
            x = jnp.pad(x, ((0, 0), pad, pad, (0, 0)))
        return self.conv(x)


def group_norm(channels: int, *, rngs: nnx.Rngs, affine: bool = True) -> nnx.GroupNorm:
    """GroupNorm with the largest of 8, 4, 2, 1 groups that divides ``channels``."""
    groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
    return nnx.GroupNorm(channels, num_groups=groups, use_scale=affine, use_bias=affine, rngs=rngs)


def upsample(x: jax.Array, factor: int = 2) -> jax.Array:
    """Nearest-neighbour up-sampling of (B, H, W, C) by ``factor`` along H and W."""
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


class ResBlock(nnx.Module):
    """Pre-activation residual block: norm → SiLU → conv(stride) → norm → SiLU → conv, plus a
    1×1 (strided) projection of the input when the shape changes."""

    def __init__(self, in_features: int, out_features: int, stride: int = 1, *, rngs: nnx.Rngs,
                 circular: bool = True):
        self.norm1 = group_norm(in_features, rngs=rngs)
        self.conv1 = CircularConv(in_features, out_features, 3, stride, rngs=rngs, circular=circular)
        self.norm2 = group_norm(out_features, rngs=rngs)
        self.conv2 = CircularConv(out_features, out_features, 3, rngs=rngs, circular=circular)
        self.shortcut = (CircularConv(in_features, out_features, 1, stride, rngs=rngs, circular=circular)
                         if stride != 1 or in_features != out_features else None)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.conv1(nnx.silu(self.norm1(x)))
        h = self.conv2(nnx.silu(self.norm2(h)))
        return h + (x if self.shortcut is None else self.shortcut(x))


# --- encoder, latent heads, decoder -----------------------------------------------------------

class Encoder(nnx.Module):
    """Stem conv, then one stage per width; every stage but the first halves H and W.
    Returns the features of every stage, full resolution first."""

    def __init__(self, in_features: int, widths: Sequence[int], blocks: int, *, rngs: nnx.Rngs,
                 circular: bool = True):
        self.stem = CircularConv(in_features, widths[0], 3, rngs=rngs, circular=circular)
        stages, previous = [], widths[0]
        for level, width in enumerate(widths):
            stage = [ResBlock(previous, width, 1 if level == 0 else 2, rngs=rngs, circular=circular)]
            stage += [ResBlock(width, width, rngs=rngs, circular=circular) for _ in range(blocks - 1)]
            stages.append(nnx.List(stage))
            previous = width
        self.stages = nnx.List(stages)
        self.out_norm = group_norm(widths[-1], rngs=rngs)

    def __call__(self, x: jax.Array) -> list[jax.Array]:
        h, features = self.stem(x), []
        for stage in self.stages:
            for block in stage:
                h = block(h)
            features.append(h)
        features[-1] = nnx.silu(self.out_norm(features[-1]))
        return features


class GaussianHead(nnx.Module):
    """Pathdreamer's ``GaussianCNN``: norm → 3×3 conv → LeakyReLU → 3×3 conv → LeakyReLU →
    separate 3×3 heads for μ and log σ² (log σ² clipped to [−10, 10] for stability)."""

    def __init__(self, in_features: int, hidden: int, z_dim: int, *, rngs: nnx.Rngs,
                 circular: bool = True):
        self.norm = group_norm(in_features, rngs=rngs)
        self.conv1 = CircularConv(in_features, hidden, 3, rngs=rngs, circular=circular)
        self.conv2 = CircularConv(hidden, hidden, 3, rngs=rngs, circular=circular)
        self.mu = CircularConv(hidden, z_dim, 3, rngs=rngs, circular=circular)
        self.logvar = CircularConv(hidden, z_dim, 3, rngs=rngs, circular=circular)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = nnx.leaky_relu(self.conv1(self.norm(x)), 0.2)
        h = nnx.leaky_relu(self.conv2(h), 0.2)
        return self.mu(h), jnp.clip(self.logvar(h), -10.0, 10.0)


def gaussian_kl(mu_q: jax.Array, logvar_q: jax.Array, mu_p: jax.Array, logvar_p: jax.Array) -> jax.Array:
    """Element-wise KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) in nats:
    ½ [log σ_p² − log σ_q² + (σ_q² + (μ_q − μ_p)²) / σ_p² − 1]; 0 iff the two are equal."""
    return 0.5 * (logvar_p - logvar_q + (jnp.exp(logvar_q) + (mu_q - mu_p) ** 2) * jnp.exp(-logvar_p) - 1.0)


class Decoder(nnx.Module):
    """From the bottleneck (+ z) back to full resolution: per level nearest ×2 up-sampling,
    concatenation of the encoder's skip features, residual blocks."""

    def __init__(self, widths: Sequence[int], z_dim: int, blocks: int, *, rngs: nnx.Rngs,
                 circular: bool = True):
        self.entry = CircularConv(widths[-1] + z_dim, widths[-1], 3, rngs=rngs, circular=circular)
        levels = []
        for level in range(len(widths) - 2, -1, -1):
            stage = [ResBlock(widths[level + 1] + widths[level], widths[level], rngs=rngs, circular=circular)]
            stage += [ResBlock(widths[level], widths[level], rngs=rngs, circular=circular)
                      for _ in range(blocks - 1)]
            levels.append(nnx.List(stage))
        self.levels = nnx.List(levels)

    def __call__(self, bottleneck: jax.Array, z: jax.Array, skips: list[jax.Array]) -> jax.Array:
        h = self.entry(jnp.concatenate([bottleneck, z], axis=-1))
        for stage, skip in zip(self.levels, reversed(skips[:-1])):
            h = jnp.concatenate([upsample(h), skip], axis=-1)
            for block in stage:
                h = block(h)
        return h


# --- inputs -----------------------------------------------------------------------------------

def pull_push_fill(values: jax.Array, weight: jax.Array) -> jax.Array:
    """Dense in-painting of (B, H, W, C) ``values`` known where the (B, H, W) ``weight`` is > 0.

    Pull: sum-pool values·weight and weight 2×2 down to the coarsest level that H and W allow.
    Push: from the coarsest level up, every pixel whose block holds no weight takes the value of
    the coarser level (nearest up-sampling); covered pixels keep their weighted mean. Pixels
    where nothing at all is known take the mean of everything known (zeros if nothing is).
    Returns (B, H, W, C) float32. Exact where weight > 0 (for 0/1 weights)."""
    weight = jnp.asarray(weight, jnp.float32)[..., None]
    values = jnp.asarray(values, jnp.float32)
    def sum_pool(x):  # (B, H, W, C) → (B, H/2, W/2, C)
        return x.reshape(x.shape[0], x.shape[1] // 2, 2, x.shape[2] // 2, 2, x.shape[3]).sum((2, 4))

    pyramid = [(values * weight, weight)]
    while all(n % 2 == 0 and n > 1 for n in pyramid[-1][1].shape[1:3]):
        v, w = pyramid[-1]
        pyramid.append((sum_pool(v), sum_pool(w)))
    v, w = pyramid[-1]
    overall = v.sum((1, 2), keepdims=True) / jnp.maximum(w.sum((1, 2), keepdims=True), 1e-6)
    fill = jnp.where(w > 0, v / jnp.maximum(w, 1e-6), overall)
    for v, w in reversed(pyramid[:-1]):
        coarse = jnp.repeat(jnp.repeat(fill, 2, axis=1), 2, axis=2)
        fill = jnp.where(w > 0, v / jnp.maximum(w, 1e-6), coarse)
    return fill


def structure_inputs(semantic: jax.Array, depth: jax.Array, mask: jax.Array,
                     depth_scale: float = DEPTH_SCALE) -> jax.Array:
    """(B, H, W, 44) network input: one-hot of the (B, H, W) class ids, depth (metres) /
    ``depth_scale`` clipped to [0, 1] (0 = no depth), mask as 0/1. Invalid pixels (mask 0) get
    zeros everywhere; class ids ≥ NUM_CLASSES raise no error but one-hot to zeros."""
    mask = jnp.asarray(mask).astype(jnp.float32)[..., None]
    onehot = jax.nn.one_hot(jnp.asarray(semantic).astype(jnp.int32), NUM_CLASSES) * mask
    depth = jnp.clip(jnp.asarray(depth, jnp.float32)[..., None] / depth_scale, 0.0, 1.0) * mask
    return jnp.concatenate([onehot, depth, mask], axis=-1)


def with_inpainted(x: jax.Array) -> jax.Array:
    """(B, H, W, 44) ``structure_inputs`` → (B, H, W, 87): ⊕ ``pull_push_fill`` of its class and
    depth channels (the last channel is the mask)."""
    return jnp.concatenate([x, pull_push_fill(x[..., :-1], x[..., -1])], axis=-1)


def _check_size(height: int, width: int, levels: int) -> None:
    factor = 2 ** (levels - 1)
    if height % factor or width % factor:
        raise ValueError(f"panorama size {height}×{width} must be divisible by {factor} "
                         f"(2^(levels−1) for {levels} encoder widths).")


# --- the generator ----------------------------------------------------------------------------

class StructureGenerator(nnx.Module):
    """Guidance (semantics, depth, mask) → per-pixel class logits and depth, with a spatial
    Gaussian latent. See the module docstring.

    widths: encoder channels per level (the first at full resolution; each further level halves
      H and W, so the bottleneck is at 1/2^(len−1)); blocks: residual blocks per level;
      z_dim: latent channels; latent_hidden: width of the prior/posterior nets;
      circular: wrap padding along the width; depth_scale: metres at sigmoid output 1;
      inpaint_guidance: add the pull-push in-painted guidance to the input (module docstring).
    """

    def __init__(self, *, widths: Sequence[int] = (16, 32, 64, 64), blocks: int = 1, z_dim: int = 16,
                 latent_hidden: int = 64, circular: bool = True, depth_scale: float = DEPTH_SCALE,
                 inpaint_guidance: bool = False, rngs: nnx.Rngs):
        widths = tuple(int(w) for w in widths)
        if len(widths) < 2 or min(widths) <= 0 or blocks < 1 or z_dim < 1:
            raise ValueError(f"need ≥ 2 positive widths, blocks ≥ 1 and z_dim ≥ 1; got widths={widths}, "
                             f"blocks={blocks}, z_dim={z_dim}.")
        self.widths, self.z_dim, self.depth_scale = widths, int(z_dim), float(depth_scale)
        self.inpaint_guidance = bool(inpaint_guidance)
        channels = 2 * INPUT_CHANNELS - 1 if inpaint_guidance else INPUT_CHANNELS
        self.encoder = Encoder(channels, widths, blocks, rngs=rngs, circular=circular)
        self.prior = GaussianHead(widths[-1], latent_hidden, z_dim, rngs=rngs, circular=circular)
        self.posterior = GaussianHead(2 * widths[-1], latent_hidden, z_dim, rngs=rngs, circular=circular)
        self.decoder = Decoder(widths, z_dim, blocks, rngs=rngs, circular=circular)
        # Gated shortcut from the input (Pathdreamer): g·conv(x) + (1 − g)·decoder.
        self.gate1 = CircularConv(channels, widths[0], 3, rngs=rngs, circular=circular)
        self.gate2 = CircularConv(widths[0], widths[0], 3, rngs=rngs, circular=circular)
        self.skip = CircularConv(channels, widths[0], 3, rngs=rngs, circular=circular)
        self.out_norm = group_norm(widths[0], rngs=rngs)
        self.head = CircularConv(widths[0], NUM_CLASSES + 1, 3, rngs=rngs, circular=circular)

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """(h, w, z_dim) of z for an H×W panorama."""
        factor = 2 ** (len(self.widths) - 1)
        return height // factor, width // factor, self.z_dim

    def __call__(self, guidance: dict[str, jax.Array], target: dict[str, jax.Array] | None = None, *,
                 key: jax.Array | None = None, sample: bool = True, z: jax.Array | None = None
                 ) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
        """guidance: ``semantic`` (B, H, W) ids, ``depth`` (B, H, W) metres, ``mask`` (B, H, W);
        target: optional ``semantic`` and ``depth`` of the true panorama (training: z comes from
        the posterior); key: PRNG key, needed when sampling; sample: z = μ + σ·ε if True, else
        μ; z: explicit (B, h, w, z_dim) latent, overrides both.

        Returns (outputs, aux). outputs: ``semantic_logits`` (B, H, W, 42), ``depth``
        (B, H, W) metres in (0, depth_scale). aux: ``prior_mu``, ``prior_logvar`` (and
        ``posterior_mu``, ``posterior_logvar`` with a target), ``kl`` = mean element-wise
        KL(q ‖ p) in nats (0 without a target), ``kl_sum`` = its sum over latent elements,
        averaged over the batch.
        """
        height, width = jnp.shape(guidance["semantic"])[1:3]
        _check_size(height, width, len(self.widths))
        x = structure_inputs(guidance["semantic"], guidance["depth"], guidance["mask"], self.depth_scale)
        if self.inpaint_guidance:
            x = with_inpainted(x)
        features = self.encoder(x)
        bottleneck = features[-1]
        prior_mu, prior_logvar = self.prior(bottleneck)
        aux = {"prior_mu": prior_mu, "prior_logvar": prior_logvar}
        mu, logvar = prior_mu, prior_logvar
        if target is not None:
            truth = structure_inputs(target["semantic"], target["depth"],
                                     jnp.ones(jnp.shape(target["semantic"]), bool), self.depth_scale)
            if self.inpaint_guidance:  # nothing to fill: the same channels, for the same encoder
                truth = jnp.concatenate([truth, truth[..., :-1]], axis=-1)
            truth_bottleneck = jax.lax.stop_gradient(self.encoder(truth)[-1])
            mu, logvar = self.posterior(jnp.concatenate([truth_bottleneck, bottleneck], axis=-1))
            kl = gaussian_kl(mu, logvar, prior_mu, prior_logvar)
            aux.update(posterior_mu=mu, posterior_logvar=logvar, kl=jnp.mean(kl),
                       kl_sum=jnp.mean(jnp.sum(kl, axis=(1, 2, 3))))
        else:
            aux.update(kl=jnp.zeros((), jnp.float32), kl_sum=jnp.zeros((), jnp.float32))
        if z is None:
            if sample:
                if key is None:
                    raise ValueError("sampling z needs a PRNG key: pass key=..., or sample=False.")
                z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape, mu.dtype)
            else:
                z = mu
        elif tuple(z.shape) != tuple(mu.shape):
            raise ValueError(f"z must have shape {tuple(mu.shape)}, got {tuple(z.shape)}.")
        h = self.decoder(bottleneck, z, features)
        gate = nnx.sigmoid(self.gate2(nnx.silu(self.gate1(x))))
        h = gate * self.skip(x) + (1.0 - gate) * h
        out = self.head(nnx.silu(self.out_norm(h)))
        outputs = {"semantic_logits": out[..., :NUM_CLASSES],
                   "depth": nnx.sigmoid(out[..., NUM_CLASSES]) * self.depth_scale}
        return outputs, aux


def num_parameters(module: nnx.Module) -> int:
    """Number of trainable scalars in ``module``."""
    return int(sum(math.prod(p.shape) for p in jax.tree.leaves(nnx.state(module, nnx.Param))))
