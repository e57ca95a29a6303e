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


def _dense(in_features: int, out_features: int, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(in_features, out_features, kernel_init=_INIT, bias_init=_INIT, rngs=rngs)


class PreActivationResidualBlock(nnx.Module):
    """x + Dense(relu(Dense(relu(x)))), width preserved; optional dropout before each Dense."""

    def __init__(self, width: int, dropout: float, rngs: nnx.Rngs) -> None:
        self.first = _dense(width, width, rngs)
        self.second = _dense(width, width, rngs)
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

    def __init__(self, width: int, depth: int, dropout: float, rngs: nnx.Rngs) -> None:
        self.blocks = nnx.List([PreActivationResidualBlock(width, dropout, rngs)
                                for _ in range(max(depth // 2, 1))])

    def __call__(self, h: jax.Array) -> jax.Array:
        for block in self.blocks:
            h = block(h)
        return jax.nn.relu(h)


class StateEnergyModel(nnx.Module):
    """The IBC MLP energy model (ResNet pre-activation trunk; 128×8 by default).

    ``obs``: (B, D) flattened normalised observation window; ``actions``: (B, N, A) normalised
    candidates → energies (B, N). The input layer Dense([obs; action]) is computed as
    Dense_obs(obs) (once per example) + Dense_action(action) (per candidate), which is the
    same function as the concatenating model at a fraction of the cost.
    """

    def __init__(self, obs_dim: int, action_dim: int, width: int = 128, depth: int = 8,
                 dropout: float = 0.0, *, rngs: nnx.Rngs) -> None:
        self.obs_projection = _dense(obs_dim, width, rngs)
        self.action_projection = nnx.Linear(action_dim, width, use_bias=False,
                                            kernel_init=_INIT, rngs=rngs)
        self.trunk = ResidualTrunk(width, depth, dropout, rngs)
        self.head = _dense(width, 1, rngs)

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
