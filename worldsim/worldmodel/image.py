"""Stage 2 of the world model: the image generator (RGB from structure and guidance RGB).

A SPADE generator with Multi-SPADE residual blocks, after Pathdreamer's ``WCSPADEGenerator``
(itself from world-consistent vid2vid), scaled down for CPU training. Every normalisation layer
is parameter-free and then modulated twice:

1. SPADE: γ, β from a conv net over the structure — one-hot semantics (42) ⊕ depth / 10 m —
   resized to the block's resolution (area average);
2. guidance RGB: γ, β from a **partial convolution** (Liu et al. 2018) over the re-projected RGB
   and its mask, so pixels the memory never saw (mask 0) cannot influence the output, whatever
   colour they hold.

The base tensor at the lowest resolution comes from the area-averaged structure and the
masked-average guidance RGB (the original starts from the previous RGB frame; here the
guidance already carries the previous frames). Output: RGB in [0, 1] through a sigmoid.

For adversarial training, ``PatchDiscriminator`` is a conditional multi-scale PatchGAN (input
RGB ⊕ structure), instance-normalised (GroupNorm with one channel per group), LeakyReLU(0.2),
kernel 4; spectral normalisation is omitted (it needs power-iteration state the shared training
loop does not carry). ``hinge_d_loss`` / ``hinge_g_loss`` are the SE3DS hinge losses.

Deviation: GroupNorm (no learned affine) instead of SyncBatchNorm; no spectral norm in the
generator; sigmoid instead of tanh rescaled (the same function up to input scale).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from worldsim.envs.navigation.semantics import NUM_CLASSES
from worldsim.worldmodel.structure import DEPTH_SCALE, CircularConv, circular_pad, group_norm, upsample

CONDITION_CHANNELS = NUM_CLASSES + 1  # one-hot (or probabilities of) semantics, depth / 10 m


def structure_condition(semantic: jax.Array, depth: jax.Array, depth_scale: float = DEPTH_SCALE) -> jax.Array:
    """(B, H, W, 43) conditioning: semantics as (B, H, W) class ids (one-hot) or (B, H, W, 42)
    probabilities, ⊕ depth (metres) / ``depth_scale`` clipped to [0, 1]."""
    semantic = jnp.asarray(semantic)
    if semantic.ndim == 3:
        semantic = jax.nn.one_hot(semantic.astype(jnp.int32), NUM_CLASSES)
    elif semantic.shape[-1] != NUM_CLASSES:
        raise ValueError(f"semantic must be (B, H, W) ids or (B, H, W, {NUM_CLASSES}) probabilities, "
                         f"got shape {semantic.shape}.")
    depth = jnp.clip(jnp.asarray(depth, jnp.float32) / depth_scale, 0.0, 1.0)[..., None]
    return jnp.concatenate([semantic.astype(jnp.float32), depth], axis=-1)


def area_downsample(x: jax.Array, factor: int) -> jax.Array:
    """Mean over non-overlapping factor×factor blocks of (B, H, W, C)."""
    if factor == 1:
        return x
    b, h, w, c = x.shape
    return x.reshape(b, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def masked_downsample(rgb: jax.Array, mask: jax.Array, factor: int) -> tuple[jax.Array, jax.Array]:
    """Masked area average: (B, h, w, 3) mean colour of the seen pixels of each block (0 where
    none) and (B, h, w, 1) 0/1 mask of blocks with any seen pixel. Unseen colours never count."""
    if factor == 1:
        return rgb * mask, mask
    total = area_downsample(rgb * mask, factor)
    coverage = area_downsample(mask, factor)
    seen = (coverage > 0).astype(rgb.dtype)
    return total / jnp.where(coverage > 0, coverage, 1.0) * seen, seen


class PartialConv(nnx.Module):
    """Mask-aware convolution (Liu et al. 2018), circular along the width.

    out = (W ⋆ (x ⊙ m)) · k² / Σ_window m + b where the window holds a seen pixel, else 0;
    returns (out, new mask = window holds a seen pixel). x: (B, H, W, C); m: (B, H, W, 1) 0/1.
    """

    def __init__(self, in_features: int, out_features: int, kernel: int = 3, *, rngs: nnx.Rngs,
                 circular: bool = True):
        self.conv = CircularConv(in_features, out_features, kernel, rngs=rngs, circular=circular,
                                 use_bias=False)
        self.bias = nnx.Param(jnp.zeros((out_features,), jnp.float32))
        self.kernel, self.circular = kernel, circular

    def __call__(self, x: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        mask = mask.astype(x.dtype)
        raw = self.conv(x * mask)
        before = (self.kernel - 1) // 2
        pad = (before, self.kernel - 1 - before)
        padded = circular_pad(mask, pad, pad) if self.circular else jnp.pad(mask, ((0, 0), pad, pad, (0, 0)))
        count = jax.lax.reduce_window(padded, 0.0, jax.lax.add, (1, self.kernel, self.kernel, 1),
                                      (1, 1, 1, 1), "VALID")
        seen = count > 0
        scale = self.kernel * self.kernel / jnp.where(seen, count, 1.0)
        out = jnp.where(seen, raw * scale + self.bias[...], 0.0)
        return out, seen.astype(x.dtype)


class SpadeFeatures(nnx.Module):
    """The modulation features of one resolution, shared by every Multi-SPADE layer there:
    ReLU(3×3 conv of the structure) and ReLU(partial conv of the guidance RGB and mask)."""

    def __init__(self, hidden: int, *, rngs: nnx.Rngs, circular: bool = True):
        self.structure = CircularConv(CONDITION_CHANNELS, hidden, 3, rngs=rngs, circular=circular)
        self.partial = PartialConv(3, hidden, 3, rngs=rngs, circular=circular)

    def __call__(self, condition, guide_rgb, guide_mask) -> tuple[jax.Array, jax.Array]:
        guide, _ = self.partial(guide_rgb, guide_mask)
        return nnx.relu(self.structure(condition)), nnx.relu(guide)


class MultiSpade(nnx.Module):
    """Parameter-free GroupNorm, then x·(1 + γ_s) + β_s from the structure features, then
    x·(1 + γ_g) + β_g from the guidance-RGB features (γ, β by 1×1 convs: the 3×3 context is in
    the shared ``SpadeFeatures``, which keeps the full-resolution layers cheap on a CPU)."""

    def __init__(self, channels: int, hidden: int, *, rngs: nnx.Rngs, circular: bool = True):
        self.norm = group_norm(channels, rngs=rngs, affine=False)
        self.structure_head = CircularConv(hidden, 2 * channels, 1, rngs=rngs, circular=circular)
        self.rgb_head = CircularConv(hidden, 2 * channels, 1, rngs=rngs, circular=circular)

    def __call__(self, x, features: tuple[jax.Array, jax.Array]) -> jax.Array:
        structure, guide = features
        gamma, beta = jnp.split(self.structure_head(structure), 2, axis=-1)
        h = self.norm(x) * (1.0 + gamma) + beta
        gamma, beta = jnp.split(self.rgb_head(guide), 2, axis=-1)
        return h * (1.0 + gamma) + beta


class SpadeResBlock(nnx.Module):
    """Multi-SPADE → LeakyReLU → 3×3 conv, twice, plus a (Multi-SPADE + 1×1 conv) shortcut
    when the width changes."""

    def __init__(self, in_features: int, out_features: int, hidden: int, *, rngs: nnx.Rngs,
                 circular: bool = True):
        middle = min(in_features, out_features)
        self.spade1 = MultiSpade(in_features, hidden, rngs=rngs, circular=circular)
        self.conv1 = CircularConv(in_features, middle, 3, rngs=rngs, circular=circular)
        self.spade2 = MultiSpade(middle, hidden, rngs=rngs, circular=circular)
        self.conv2 = CircularConv(middle, out_features, 3, rngs=rngs, circular=circular)
        if in_features != out_features:
            self.spade_shortcut = MultiSpade(in_features, hidden, rngs=rngs, circular=circular)
            self.conv_shortcut = CircularConv(in_features, out_features, 1, rngs=rngs,
                                              circular=circular, use_bias=False)
        else:
            self.spade_shortcut = self.conv_shortcut = None

    def __call__(self, x, features: tuple[jax.Array, jax.Array]) -> jax.Array:
        h = self.conv1(nnx.leaky_relu(self.spade1(x, features), 0.2))
        h = self.conv2(nnx.leaky_relu(self.spade2(h, features), 0.2))
        shortcut = x if self.conv_shortcut is None else self.conv_shortcut(self.spade_shortcut(x, features))
        return h + shortcut


class ImageGenerator(nnx.Module):
    """Structure (semantics, depth) + guidance (RGB, mask) → RGB in [0, 1].

    widths: channels of the residual block at each resolution, lowest first; the lowest runs at
      1/2^(len−1) of the panorama, each further block doubles H and W (the last one at full
      resolution). hidden: width of the modulation nets. circular: wrap padding along W.
    """

    def __init__(self, *, widths: Sequence[int] = (64, 64, 32, 16), hidden: int = 32,
                 circular: bool = True, depth_scale: float = DEPTH_SCALE, rngs: nnx.Rngs):
        widths = tuple(int(w) for w in widths)
        if len(widths) < 1 or min(widths) <= 0 or hidden <= 0:
            raise ValueError(f"need ≥ 1 positive widths and hidden > 0; got widths={widths}, hidden={hidden}.")
        self.widths, self.depth_scale = widths, float(depth_scale)
        self.base = CircularConv(CONDITION_CHANNELS + 4, widths[0], 3, rngs=rngs, circular=circular)
        blocks, previous = [], widths[0]
        for width in widths:
            blocks.append(SpadeResBlock(previous, width, hidden, rngs=rngs, circular=circular))
            previous = width
        self.blocks = nnx.List(blocks)
        self.features = nnx.List([SpadeFeatures(hidden, rngs=rngs, circular=circular) for _ in widths])
        self.out = CircularConv(widths[-1], 3, 3, rngs=rngs, circular=circular)

    def __call__(self, semantic: jax.Array, depth: jax.Array, guidance: dict[str, jax.Array]
                 ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """semantic: (B, H, W) ids or (B, H, W, 42) probabilities; depth: (B, H, W) metres;
        guidance: ``rgb`` (B, H, W, 3) in [0, 1] (uint8 is scaled by 1/255) and ``mask``
        (B, H, W). Returns ((B, H, W, 3) RGB in [0, 1], aux {})."""
        condition = structure_condition(semantic, depth, self.depth_scale)
        rgb = jnp.asarray(guidance["rgb"])
        rgb = rgb.astype(jnp.float32) / 255.0 if rgb.dtype == jnp.uint8 else rgb.astype(jnp.float32)
        mask = jnp.asarray(guidance["mask"]).astype(jnp.float32)[..., None]
        height, width = condition.shape[1:3]
        factor = 2 ** (len(self.widths) - 1)
        if height % factor or width % factor:
            raise ValueError(f"panorama size {height}×{width} must be divisible by {factor} "
                             f"(2^(levels−1) for {len(self.widths)} image-generator widths).")
        rgb = rgb * mask  # unseen colours are never read, even by the base tensor
        base_rgb, base_mask = masked_downsample(rgb, mask, factor)
        h = self.base(jnp.concatenate([area_downsample(condition, factor), base_rgb, base_mask], axis=-1))
        for level, (block, features) in enumerate(zip(self.blocks, self.features)):
            scale = factor // 2 ** level
            if level:
                h = upsample(h)
            level_rgb, level_mask = masked_downsample(rgb, mask, scale)
            h = block(h, features(area_downsample(condition, scale), level_rgb, level_mask))
        return nnx.sigmoid(self.out(nnx.leaky_relu(h, 0.2))), {}


# --- adversarial training ---------------------------------------------------------------------

class _PatchNet(nnx.Module):
    """One scale of the PatchGAN."""

    def __init__(self, in_features: int, width: int, layers: int, *, rngs: nnx.Rngs, circular: bool):
        convs, norms, previous = [], [], in_features
        for layer in range(layers + 1):
            out = width * 2 ** min(layer, 3)
            convs.append(CircularConv(previous, out, 4, 2 if layer < layers else 1, rngs=rngs,
                                      circular=circular))
            if layer:  # instance norm: one channel per group
                norms.append(nnx.GroupNorm(out, num_groups=out, rngs=rngs))
            previous = out
        self.convs, self.norms = nnx.List(convs), nnx.List(norms)
        self.head = CircularConv(previous, 1, 3, rngs=rngs, circular=circular)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = nnx.leaky_relu(self.convs[0](x), 0.2)
        for conv, norm in zip(self.convs[1:], self.norms):
            h = nnx.leaky_relu(norm(conv(h)), 0.2)
        return self.head(h)


class PatchDiscriminator(nnx.Module):
    """Conditional PatchGAN on RGB ⊕ structure at ``scales`` resolutions (area ×½ between):
    ``layers`` stride-2 kernel-4 convs (instance norm after the first), one stride-1 conv, then a
    1-channel 3×3 patch-logit head. Returns the list of (B, h, w, 1) logit maps."""

    def __init__(self, *, width: int = 32, layers: int = 3, scales: int = 1, circular: bool = True,
                 rngs: nnx.Rngs):
        self.nets = nnx.List([_PatchNet(3 + CONDITION_CHANNELS, width, layers, rngs=rngs, circular=circular)
                              for _ in range(scales)])

    def __call__(self, rgb: jax.Array, condition: jax.Array) -> list[jax.Array]:
        x = jnp.concatenate([rgb, condition], axis=-1)
        outputs = []
        for scale, net in enumerate(self.nets):
            if scale:
                x = area_downsample(x, 2)
            outputs.append(net(x))
        return outputs


def hinge_d_loss(real_logits: list[jax.Array], fake_logits: list[jax.Array]) -> jax.Array:
    """Σ_scales mean relu(1 − D(real)) + mean relu(1 + D(fake))."""
    return sum(jnp.mean(nnx.relu(1.0 - r)) + jnp.mean(nnx.relu(1.0 + f))
               for r, f in zip(real_logits, fake_logits))


def hinge_g_loss(fake_logits: list[jax.Array]) -> jax.Array:
    """Σ_scales −mean D(fake)."""
    return sum(-jnp.mean(f) for f in fake_logits)
