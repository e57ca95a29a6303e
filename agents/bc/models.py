"""Explicit behavioural-cloning baselines on the IBC trunk: MSE regression and a mixture
density network (MDN). Both map normalised observations (B, D) to normalised actions (B, A)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from worldsim.agents.ibc.networks import ResidualTrunk, _dense

KINDS = ("mse", "mdn")


class MseModel(nnx.Module):
    """Dense(width) → residual trunk → Dense(A); trained with mean squared error."""

    def __init__(self, obs_dim: int, action_dim: int, width: int, depth: int, dropout: float,
                 *, rngs: nnx.Rngs) -> None:
        self.projection = _dense(obs_dim, width, rngs)
        self.trunk = ResidualTrunk(width, depth, dropout, rngs)
        self.head = _dense(width, action_dim, rngs)

    def __call__(self, obs: jax.Array) -> jax.Array:
        return self.head(self.trunk(self.projection(obs)))


class MdnModel(nnx.Module):
    """Trunk → K mixture logits, K×A means and K×A log standard deviations (diagonal Gaussians)."""

    def __init__(self, obs_dim: int, action_dim: int, width: int, depth: int, dropout: float,
                 components: int = 26, *, rngs: nnx.Rngs) -> None:
        self.components, self.action_dim = components, action_dim
        self.projection = _dense(obs_dim, width, rngs)
        self.trunk = ResidualTrunk(width, depth, dropout, rngs)
        self.head = _dense(width, components * (1 + 2 * action_dim), rngs)

    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(logits (B, K), means (B, K, A), log_stds (B, K, A))."""
        out = self.head(self.trunk(self.projection(obs)))
        k, a = self.components, self.action_dim
        logits, means, log_stds = jnp.split(out, [k, k + k * a], axis=-1)
        shape = (obs.shape[0], k, a)
        return logits, means.reshape(shape), jnp.clip(log_stds.reshape(shape), -7.0, 2.0)


def make_bc_model(config: ml_collections.ConfigDict, dims: dict, rngs: nnx.Rngs) -> nnx.Module:
    m = config.model
    if config.agent == "mse":
        return MseModel(dims["obs"], dims["action"], m.width, m.depth, m.dropout, rngs=rngs)
    if config.agent == "mdn":
        return MdnModel(dims["obs"], dims["action"], m.width, m.depth, m.dropout,
                        config.mdn.components, rngs=rngs)
    raise ValueError(f"agent={config.agent!r} is not an explicit baseline; one of {KINDS}")


def mdn_log_likelihood(logits, means, log_stds, actions) -> jax.Array:
    """log p(actions | mixture), (B,) for actions (B, A)."""
    z = (actions[:, None, :] - means) / jnp.exp(log_stds)
    component = -0.5 * jnp.sum(z ** 2 + 2 * log_stds + jnp.log(2 * jnp.pi), axis=-1)
    return jax.nn.logsumexp(jax.nn.log_softmax(logits, axis=-1) + component, axis=-1)


def make_bc_loss_fn(config: ml_collections.ConfigDict):
    def loss_fn(model, batch, key):
        obs, actions = batch["inputs"]["obs"], batch["actions"]
        if isinstance(model, MdnModel):
            nll = -mdn_log_likelihood(*model(obs), actions).mean()
            return nll, {"nll": nll}
        mse = jnp.mean(jnp.square(model(obs) - actions))
        return mse, {"mse": mse}

    return loss_fn


def make_bc_predict_fn(config: ml_collections.ConfigDict):
    """MSE: the regression output. MDN: the mean of the most probable component (after the
    test temperature), the usual greedy choice at evaluation."""

    def predict(model, inputs, key):
        obs = inputs["obs"]
        if isinstance(model, MdnModel):
            logits, means, _ = model(obs)
            best = jnp.argmax(logits / config.mdn.temperature, axis=-1)
            return jnp.take_along_axis(means, best[:, None, None], axis=1)[:, 0]
        return model(obs)

    return predict
