"""Explicit behavioural-cloning baselines on the IBC trunk: MSE regression and a mixture
density network (MDN). Both map model inputs ({"obs": (B, D)} and, for pixel tasks, "images"
(B, H, W, 3T) uint8 through the same conv encoder as the image energy model) to normalised
actions (B, A)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from worldsim.agents.ibc.networks import (ResidualTrunk, _dense, image_encoder_from_config,
                                          make_image_encoder)

KINDS = ("mse", "mdn")


class ExplicitTrunk(nnx.Module):
    """[conv encoder of the images ⊕] state → Dense(width) → residual trunk → (B, width)."""

    def __init__(self, obs_dim: int, image_channels: int, width: int, depth: int,
                 dropout: float, rngs: nnx.Rngs, encoder: nnx.Module | None = None) -> None:
        if encoder is None and image_channels:
            encoder = make_image_encoder("conv_maxpool", image_channels, rngs=rngs)
        self.encoder = encoder
        features = obs_dim + (self.encoder.features if self.encoder else 0)
        self.projection = _dense(features, width, rngs)
        self.trunk = ResidualTrunk(width, depth, dropout, rngs)

    def __call__(self, inputs: dict[str, jax.Array]) -> jax.Array:
        parts = [inputs["obs"]] if "obs" in inputs else []
        if self.encoder is not None:
            parts.insert(0, self.encoder(inputs["images"].astype(jnp.float32) / 255.0))
        return self.trunk(self.projection(jnp.concatenate(parts, axis=-1)))


class MseModel(nnx.Module):
    """Trunk → Dense(A); trained with mean squared error."""

    def __init__(self, obs_dim: int, action_dim: int, width: int, depth: int, dropout: float,
                 image_channels: int = 0, encoder: nnx.Module | None = None,
                 *, rngs: nnx.Rngs) -> None:
        self.trunk = ExplicitTrunk(obs_dim, image_channels, width, depth, dropout, rngs, encoder)
        self.head = _dense(width, action_dim, rngs)

    def __call__(self, inputs: dict[str, jax.Array]) -> jax.Array:
        return self.head(self.trunk(inputs))


class MdnModel(nnx.Module):
    """Trunk → K mixture logits, K×A means and K×A log standard deviations (diagonal Gaussians)."""

    def __init__(self, obs_dim: int, action_dim: int, width: int, depth: int, dropout: float,
                 components: int = 26, image_channels: int = 0,
                 encoder: nnx.Module | None = None, *, rngs: nnx.Rngs) -> None:
        self.components, self.action_dim = components, action_dim
        self.trunk = ExplicitTrunk(obs_dim, image_channels, width, depth, dropout, rngs, encoder)
        self.head = _dense(width, components * (1 + 2 * action_dim), rngs)

    def __call__(self, inputs: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(logits (B, K), means (B, K, A), log_stds (B, K, A))."""
        out = self.head(self.trunk(inputs))
        k, a = self.components, self.action_dim
        logits, means, log_stds = jnp.split(out, [k, k + k * a], axis=-1)
        shape = (out.shape[0], k, a)
        return logits, means.reshape(shape), jnp.clip(log_stds.reshape(shape), -7.0, 2.0)


def make_bc_model(config: ml_collections.ConfigDict, dims: dict, rngs: nnx.Rngs) -> nnx.Module:
    m, channels = config.model, dims.get("image_channels", 0)
    encoder = None
    if channels:
        encoder = image_encoder_from_config(m, dims, rngs=rngs)
    if config.agent == "mse":
        return MseModel(dims["obs"], dims["action"], m.width, m.depth, m.dropout, channels,
                        encoder, rngs=rngs)
    if config.agent == "mdn":
        return MdnModel(dims["obs"], dims["action"], m.width, m.depth, m.dropout,
                        config.mdn.components, channels, encoder, rngs=rngs)
    raise ValueError(f"agent={config.agent!r} is not an explicit baseline; one of {KINDS}")


def mdn_log_likelihood(logits, means, log_stds, actions) -> jax.Array:
    """log p(actions | mixture), (B,) for actions (B, A)."""
    z = (actions[:, None, :] - means) / jnp.exp(log_stds)
    component = -0.5 * jnp.sum(z ** 2 + 2 * log_stds + jnp.log(2 * jnp.pi), axis=-1)
    return jax.nn.logsumexp(jax.nn.log_softmax(logits, axis=-1) + component, axis=-1)


def make_bc_loss_fn(config: ml_collections.ConfigDict):
    def loss_fn(model, batch, key):
        inputs, actions = batch["inputs"], batch["actions"]
        if isinstance(model, MdnModel):
            nll = -mdn_log_likelihood(*model(inputs), actions).mean()
            return nll, {"nll": nll}
        mse = jnp.mean(jnp.square(model(inputs) - actions))
        return mse, {"mse": mse}

    return loss_fn


def make_bc_predict_fn(config: ml_collections.ConfigDict):
    """MSE: the regression output. MDN: the mean of the most probable component (after the
    test temperature), the usual greedy choice at evaluation."""

    def predict(model, inputs, key):
        if isinstance(model, MdnModel):
            logits, means, _ = model(inputs)
            best = jnp.argmax(logits / config.mdn.temperature, axis=-1)
            return jnp.take_along_axis(means, best[:, None, None], axis=1)[:, 0]
        return model(inputs)

    return predict
