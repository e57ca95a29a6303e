"""Energy networks E(observation, action) in Flax NNX.

Both networks use late fusion: the observation is encoded once per example and the encoding is
broadcast over the N candidate actions, so scoring N actions costs one observation encoding plus
N cheap action passes. Lower energy = better action; the InfoNCE logit is ``-E``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

_INIT = nnx.initializers.normal(0.05)  # the original's random-normal σ = 0.05 init


class SpectralState(nnx.Variable):
    """The power-iteration vector of a spectrally normalised layer (not trained)."""


class SpectralNormLinear(nnx.Module):
    """Dense layer with its kernel divided by its largest singular value σ(W).

    σ is estimated from the stored right singular vector ``u`` (a ``SpectralState``, not
    trained). ``power_iteration`` refines ``u`` once; the loss calls it once per training step
    through ``update_spectral_norms`` (IBC §6.7), never inside the samplers' own transforms,
    and evaluation never calls it.
    """

    def __init__(self, in_features: int, out_features: int, rngs: nnx.Rngs) -> None:
        self.kernel = nnx.Param(_INIT(rngs.params(), (in_features, out_features)))
        self.bias = nnx.Param(_INIT(rngs.params(), (out_features,)))
        u = jax.random.normal(rngs.params(), (out_features,))
        self.u = SpectralState(u / jnp.linalg.norm(u))

    def power_iteration(self) -> None:
        kernel = jax.lax.stop_gradient(self.kernel[...])
        v = kernel @ self.u[...]
        u = kernel.T @ (v / (jnp.linalg.norm(v) + 1e-12))
        self.u[...] = u / (jnp.linalg.norm(u) + 1e-12)

    def normalized_kernel(self) -> jax.Array:
        kernel = self.kernel[...]
        sigma = jnp.linalg.norm(kernel @ jax.lax.stop_gradient(self.u[...]))
        return kernel / (sigma + 1e-12)

    def __call__(self, x: jax.Array) -> jax.Array:
        return x @ self.normalized_kernel() + self.bias[...]


def update_spectral_norms(model: nnx.Module) -> None:
    """One power iteration in every spectrally normalised layer of ``model``."""
    for _, module in model.iter_modules():
        if isinstance(module, SpectralNormLinear):
            module.power_iteration()


def _dense(in_features: int, out_features: int, rngs: nnx.Rngs,
           spectral_norm: bool = False) -> nnx.Module:
    if spectral_norm:
        return SpectralNormLinear(in_features, out_features, rngs)
    return nnx.Linear(in_features, out_features, kernel_init=_INIT, bias_init=_INIT, rngs=rngs)


class PreActivationResidualBlock(nnx.Module):
    """x + Dense(relu(Dense(relu(x)))), width preserved; optional dropout before each Dense."""

    def __init__(self, width: int, dropout: float, rngs: nnx.Rngs,
                 spectral_norm: bool = False) -> None:
        self.first = _dense(width, width, rngs, spectral_norm)
        self.second = _dense(width, width, rngs, spectral_norm)
        self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout > 0 else None

    def __call__(self, x: jax.Array) -> jax.Array:
        h = jax.nn.relu(x)
        h = self.first(self.dropout(h) if self.dropout else h)
        h = jax.nn.relu(h)
        h = self.second(self.dropout(h) if self.dropout else h)
        return x + h


class ResidualTrunk(nnx.Module):
    """``depth // 2`` pre-activation residual blocks of width ``width`` (no normalisation layers,
    as the original: normalisation hurts energy models)."""

    def __init__(self, width: int, depth: int, dropout: float, rngs: nnx.Rngs,
                 spectral_norm: bool = False) -> None:
        self.blocks = nnx.List([PreActivationResidualBlock(width, dropout, rngs, spectral_norm)
                                for _ in range(max(depth // 2, 1))])

    def __call__(self, h: jax.Array) -> jax.Array:
        for block in self.blocks:
            h = block(h)
        return jax.nn.relu(h)


class StateEnergyModel(nnx.Module):
    """The IBC MLP energy model (ResNet pre-activation trunk; 128×8 by default).

    ``obs``: (B, D) flattened normalised observation window; ``actions``: (B, N, A) normalised
    candidates → energies (B, N). ``spectral_norm`` normalises the trunk and head layers (the
    input projections stay plain so late fusion still holds). The input layer
    Dense([obs; action]) is computed as
    Dense_obs(obs) (once per example) + Dense_action(action) (per candidate), which is the
    same function as the concatenating model at a fraction of the cost.
    """

    def __init__(self, obs_dim: int, action_dim: int, width: int = 128, depth: int = 8,
                 dropout: float = 0.0, spectral_norm: bool = False, *, rngs: nnx.Rngs) -> None:
        self.obs_projection = _dense(obs_dim, width, rngs)
        self.action_projection = nnx.Linear(action_dim, width, use_bias=False,
                                            kernel_init=_INIT, rngs=rngs)
        self.trunk = ResidualTrunk(width, depth, dropout, rngs, spectral_norm)
        self.head = _dense(width, 1, rngs, spectral_norm)

    def encode(self, obs: jax.Array) -> jax.Array:
        """(B, D) → (B, width) observation embedding, reusable across candidate sets."""
        return self.obs_projection(obs)

    def energy_from_embedding(self, embedding: jax.Array, actions: jax.Array) -> jax.Array:
        """(B, width), (B, N, A) → (B, N)."""
        h = embedding[:, None, :] + self.action_projection(actions)
        return self.head(self.trunk(h))[..., 0]

    def __call__(self, obs: jax.Array, actions: jax.Array) -> jax.Array:
        return self.energy_from_embedding(self.encode(obs), actions)


class ConvMaxPoolEncoder(nnx.Module):
    """4 × [Conv 3×3 SAME + ReLU + MaxPool 2×2] (32/64/128/256 channels) → global average pool.

    (B, H, W, C) float images in [0, 1] → (B, 256).
    """

    def __init__(self, in_channels: int, channels=(32, 64, 128, 256), *, rngs: nnx.Rngs) -> None:
        sizes = (in_channels, *channels)
        self.convs = nnx.List([nnx.Conv(a, b, (3, 3), padding="SAME", rngs=rngs)
                               for a, b in zip(sizes[:-1], sizes[1:])])
        self.features = channels[-1]

    def __call__(self, images: jax.Array) -> jax.Array:
        h = images
        for conv in self.convs:
            h = nnx.max_pool(jax.nn.relu(conv(h)), (2, 2), strides=(2, 2), padding="SAME")
        return h.mean(axis=(1, 2))


class SpatialSoftmaxEncoder(nnx.Module):
    """Patch stem → Conv 3×3 SAME + ReLU layers → spatial soft-argmax keypoints.

    The stem is a ``patch``×``patch`` convolution with stride ``patch`` (every pixel of a patch
    reaches the features, at 1/patch² of the cost of full-resolution 3×3 convolutions, which
    are slow on CPUs). Each channel of the last feature map then becomes a keypoint: the
    softmax-weighted mean (x, y) of its activations over the map, in [-1, 1] image
    coordinates (Levine et al. 2016; a spatial soft-argmax layer ships with the IBC code).
    Positions survive this pooling, so a small network localises the block and the effector
    well inside one patch — what the global average pool of ``ConvMaxPoolEncoder`` has to
    learn from padding effects.

    (B, H, W, C) float images in [0, 1] → (B, 2K), K = ``channels[-1]`` (x of every keypoint,
    then y).
    """

    def __init__(self, in_channels: int, channels=(32, 32, 32), patch: int = 4,
                 *, rngs: nnx.Rngs) -> None:
        self.stem = nnx.Conv(in_channels, channels[0], (patch, patch), strides=(patch, patch),
                             padding="VALID", rngs=rngs)
        self.convs = nnx.List([nnx.Conv(a, b, (3, 3), padding="SAME", rngs=rngs)
                               for a, b in zip(channels[:-1], channels[1:])])
        self.features = 2 * channels[-1]

    def __call__(self, images: jax.Array) -> jax.Array:
        h = jax.nn.relu(self.stem(images))
        for conv in self.convs:
            h = jax.nn.relu(conv(h))
        return spatial_soft_argmax(h)


def spatial_soft_argmax(features: jax.Array) -> jax.Array:
    """(B, H, W, K) feature maps → (B, 2K): per channel, the softmax-over-positions-weighted
    mean x then y, in [-1, 1] (left/top edge centre = -1, right/bottom = +1)."""
    b, height, width, k = features.shape
    weights = jax.nn.softmax(features.reshape(b, height * width, k), axis=1)
    ys, xs = jnp.meshgrid(jnp.linspace(-1.0, 1.0, height), jnp.linspace(-1.0, 1.0, width),
                          indexing="ij")
    x = jnp.einsum("bpk,p->bk", weights, xs.reshape(-1))
    y = jnp.einsum("bpk,p->bk", weights, ys.reshape(-1))
    return jnp.concatenate([x, y], axis=-1)


class BackboneImageEncoder(nnx.Module):
    """The shared vision backbone of ``worldsim.nn`` (a ViT, mean-pooled tokens) as an image
    encoder: (B, H, W, C) float images in [0, 1] → (B, width). ``variant`` is a
    ``vit_variant`` name such as "mu/10"; the patch size must divide both image sides."""

    def __init__(self, in_channels: int, image_size: tuple[int, int], variant: str,
                 *, rngs: nnx.Rngs) -> None:
        from worldsim.nn import VisionTransformer, vit_variant
        settings = vit_variant(variant)
        self.vit = VisionTransformer(**settings, image_size=tuple(image_size),
                                     in_channels=in_channels, pool="gap", rngs=rngs)
        self.features = settings["width"]

    def __call__(self, images: jax.Array) -> jax.Array:
        features, _ = self.vit(images)
        return features


IMAGE_ENCODERS = ("conv_maxpool", "spatial_softmax", "vit")


def make_image_encoder(kind: str, in_channels: int, channels: tuple[int, ...] | None = None,
                       *, image_size: tuple[int, int] | None = None, vit_variant: str = "mu/10",
                       rngs: nnx.Rngs) -> nnx.Module:
    """The image encoder ``kind`` (one of IMAGE_ENCODERS): the conv encoders with ``channels``
    per conv layer (None: that encoder's default), or the shared ViT backbone of
    ``worldsim.nn`` in ``vit_variant`` for images of ``image_size`` (height, width)."""
    if kind not in IMAGE_ENCODERS:
        raise ValueError(f"model.image_encoder={kind!r} is not one of {IMAGE_ENCODERS}")
    if kind == "vit":
        if image_size is None:
            raise ValueError("the 'vit' image encoder needs the image size (height, width)")
        return BackboneImageEncoder(in_channels, image_size, vit_variant, rngs=rngs)
    cls = ConvMaxPoolEncoder if kind == "conv_maxpool" else SpatialSoftmaxEncoder
    if channels is None:
        return cls(in_channels, rngs=rngs)
    return cls(in_channels, tuple(int(c) for c in channels), rngs=rngs)


def image_encoder_from_config(model_config, dims: dict, *, rngs: nnx.Rngs) -> nnx.Module:
    """``make_image_encoder`` from a config's ``model`` section and the model ``dims``
    ({"image_channels": C, "image_size": (H, W) or absent, ...}); older configs without the
    encoder keys get the paper's conv encoder."""
    return make_image_encoder(model_config.get("image_encoder", "conv_maxpool"),
                              dims["image_channels"], model_config.get("conv_channels"),
                              image_size=dims.get("image_size"),
                              vit_variant=model_config.get("vit_variant", "mu/10"), rngs=rngs)


class DenseResnetValue(nnx.Module):
    """Dense(w) → blocks of [relu, Dense(w/4), relu, Dense(w/4), relu, Dense(w)] + skip → Dense(1)."""

    def __init__(self, in_features: int, width: int, num_blocks: int, rngs: nnx.Rngs) -> None:
        self.projection = _dense(in_features, width, rngs)
        self.blocks = nnx.List([nnx.List([_dense(width, width // 4, rngs),
                                          _dense(width // 4, width // 4, rngs),
                                          _dense(width // 4, width, rngs)])
                                for _ in range(num_blocks)])
        self.head = _dense(width, 1, rngs)

    def __call__(self, h: jax.Array) -> jax.Array:
        h = self.projection(h)
        for block in self.blocks:
            skip = h
            for layer in block:
                h = layer(jax.nn.relu(h))
            h = h + skip
        return self.head(h)[..., 0]


class PixelEnergyModel(nnx.Module):
    """Late-fusion image energy model: conv encoder once per observation, tiled over actions.

    ``images``: (B, H, W, 3T) uint8 frames of the window stacked on channels (or the output of
    a shared backbone via ``encoder=``); ``state``: optional (B, D) extra state features;
    ``actions``: (B, N, A) → (B, N).
    """

    def __init__(self, image_channels: int, action_dim: int, state_dim: int = 0,
                 width: int = 1024, num_blocks: int = 1, encoder: nnx.Module | None = None,
                 *, rngs: nnx.Rngs) -> None:
        self.encoder = encoder or ConvMaxPoolEncoder(image_channels, rngs=rngs)
        features = self.encoder.features + state_dim
        self.value = DenseResnetValue(features + action_dim, width, num_blocks, rngs)

    def encode(self, images: jax.Array, state: jax.Array | None = None) -> jax.Array:
        h = self.encoder(images.astype(jnp.float32) / 255.0)
        return h if state is None else jnp.concatenate([h, state], axis=-1)

    def energy_from_embedding(self, embedding: jax.Array, actions: jax.Array) -> jax.Array:
        tiled = jnp.broadcast_to(embedding[:, None, :],
                                 (*actions.shape[:2], embedding.shape[-1]))
        return self.value(jnp.concatenate([tiled, actions], axis=-1))
