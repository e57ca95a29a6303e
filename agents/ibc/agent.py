"""The implicit-BC agent: energy model, InfoNCE training objective and energy-minimising policy.

``config.ibc.sampler`` picks the variant:
  "dfo"            uniform counter-examples in training, derivative-free optimisation to act;
  "langevin"       counter-examples refined by Langevin MCMC, gradient penalty, Langevin to act;
  "autoregressive" one energy model per action dimension, DFO coordinate by coordinate.
All work in normalised action units inside ``bounds`` (see samplers.ActionBounds).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from worldsim.agents.ibc.losses import gradient_penalty, info_nce
from worldsim.agents.ibc.networks import (PixelEnergyModel, StateEnergyModel,
                                          image_encoder_from_config,
                                          update_spectral_norms)
from worldsim.agents.ibc.samplers import (ActionBounds, derivative_free_optimize,
                                          langevin_chain, langevin_optimize, uniform_actions)

SAMPLERS = ("dfo", "langevin", "autoregressive")


class AutoregressiveEnergyModel(nnx.Module):
    """One energy model per action dimension: E^j(x, y_1..y_j), j = 1..A (IBC appendix B.2)."""

    def __init__(self, obs_dim: int, action_dim: int, width: int, depth: int, dropout: float,
                 *, rngs: nnx.Rngs) -> None:
        self.models = nnx.List([StateEnergyModel(obs_dim, j + 1, width, depth, dropout, rngs=rngs)
                                for j in range(action_dim)])


def make_energy_model(config: ml_collections.ConfigDict, dims: dict[str, Any],
                      rngs: nnx.Rngs) -> nnx.Module:
    """The energy network for ``dims`` = {"obs": D, "action": A, "image_channels": C or 0}."""
    m = config.model
    if config.ibc.sampler not in SAMPLERS:
        raise ValueError(f"ibc.sampler={config.ibc.sampler!r} is not one of {SAMPLERS}")
    if dims.get("image_channels"):
        encoder = image_encoder_from_config(m, dims, rngs=rngs)
        return PixelEnergyModel(dims["image_channels"], dims["action"], state_dim=dims["obs"],
                                width=m.width, num_blocks=m.get("num_blocks", 1),
                                encoder=encoder, rngs=rngs)
    if config.ibc.sampler == "autoregressive":
        return AutoregressiveEnergyModel(dims["obs"], dims["action"], m.width, m.depth,
                                         m.dropout, rngs=rngs)
    return StateEnergyModel(dims["obs"], dims["action"], m.width, m.depth, m.dropout,
                            m.spectral_norm, rngs=rngs)


def _embed(model: nnx.Module, inputs: dict[str, jax.Array]) -> jax.Array:
    if isinstance(model, PixelEnergyModel):
        return model.encode(inputs["images"], inputs.get("obs"))
    return model.encode(inputs["obs"])


def make_loss_fn(config: ml_collections.ConfigDict, bounds: ActionBounds):
    """``(model, batch, key) -> (loss, metrics)`` for batches {"inputs": {...}, "actions": (B, A)}."""
    ibc = config.ibc

    def loss_fn(model, batch, key):
        update_spectral_norms(model)
        actions = batch["actions"]
        if isinstance(model, AutoregressiveEnergyModel):
            return _autoregressive_loss(model, batch["inputs"], actions, key, bounds, ibc)
        embedding = _embed(model, batch["inputs"])
        energy_fn = lambda y: model.energy_from_embedding(embedding, y)  # noqa: E731
        negatives = uniform_actions(key, bounds, (actions.shape[0], ibc.num_negatives))
        if ibc.sampler == "langevin":
            frozen = jax.lax.stop_gradient(embedding)
            chain_energy = lambda y: model.energy_from_embedding(frozen, y)  # noqa: E731
            negatives = langevin_chain(chain_energy, jax.random.fold_in(key, 1), negatives,
                                       bounds, **_langevin_kwargs(ibc))
        candidates = jnp.concatenate([jax.lax.stop_gradient(negatives), actions[:, None]], axis=1)
        loss, accuracy = info_nce(energy_fn(candidates), ibc.temperature)
        metrics = {"info_nce": loss, "accuracy": accuracy}
        if ibc.gradient_penalty > 0:
            penalty = gradient_penalty(energy_fn, candidates, ibc.gradient_margin)
            loss = loss + ibc.gradient_penalty * penalty
            metrics["gradient_penalty"] = penalty
        return loss, metrics

    return loss_fn


def _langevin_kwargs(ibc: ml_collections.ConfigDict) -> dict[str, Any]:
    return {"steps": ibc.langevin_steps, "step_start": ibc.langevin_step_start,
            "step_end": ibc.langevin_step_end, "noise_scale": ibc.langevin_noise,
            "delta_clip": ibc.langevin_delta_clip}


def _autoregressive_loss(model, inputs, actions, key, bounds, ibc):
    """Sum over dimensions j of InfoNCE(E^j) with y_1..y_{j-1} true and y_j uniform."""
    total, metrics = 0.0, {}
    batch, n = actions.shape[0], ibc.num_negatives
    for j, energy_model in enumerate(model.models):
        embedding = energy_model.encode(inputs["obs"])
        column = ActionBounds(bounds.low[j:j + 1], bounds.high[j:j + 1])
        negatives = uniform_actions(jax.random.fold_in(key, j), column, (batch, n))
        prefix = jnp.broadcast_to(actions[:, None, :j], (batch, n, j))
        candidates = jnp.concatenate([jnp.concatenate([prefix, negatives], -1),
                                      actions[:, None, :j + 1]], axis=1)
        loss, accuracy = info_nce(energy_model.energy_from_embedding(embedding, candidates),
                                  ibc.temperature)
        total = total + loss
        metrics[f"info_nce_dim{j}"], metrics[f"accuracy_dim{j}"] = loss, accuracy
    return total, metrics


def make_predict_fn(config: ml_collections.ConfigDict, bounds: ActionBounds):
    """``(model, inputs, key) -> (B, A)`` normalised actions that minimise the energy."""
    ibc = config.ibc

    def predict(model, inputs, key):
        if isinstance(model, AutoregressiveEnergyModel):
            return _autoregressive_predict(model, inputs, key, bounds, ibc)
        embedding = _embed(model, inputs)
        energy_fn = lambda y: model.energy_from_embedding(embedding, y)  # noqa: E731
        batch = embedding.shape[0]
        if ibc.sampler == "langevin":
            best, _, _ = langevin_optimize(energy_fn, key, batch, bounds, ibc.inference_samples,
                                           second_chain=ibc.second_chain, **_langevin_kwargs(ibc))
        else:
            best, _, _ = derivative_free_optimize(
                energy_fn, key, batch, bounds, ibc.inference_samples, ibc.dfo_iterations,
                ibc.dfo_noise, ibc.dfo_noise_shrink, ibc.temperature)
        return best

    return predict


def _autoregressive_predict(model, inputs, key, bounds, ibc):
    chosen = None
    for j, energy_model in enumerate(model.models):
        embedding = energy_model.encode(inputs["obs"])
        column = ActionBounds(bounds.low[j:j + 1], bounds.high[j:j + 1])
        batch, n = embedding.shape[0], ibc.inference_samples

        def energy_fn(y, embedding=embedding, prefix=chosen):
            if prefix is None:
                return energy_model.energy_from_embedding(embedding, y)
            tiled = jnp.broadcast_to(prefix[:, None, :], (batch, n, prefix.shape[-1]))
            return energy_model.energy_from_embedding(embedding, jnp.concatenate([tiled, y], -1))

        best, _, _ = derivative_free_optimize(energy_fn, jax.random.fold_in(key, j), batch,
                                              column, n, ibc.dfo_iterations, ibc.dfo_noise,
                                              ibc.dfo_noise_shrink, ibc.temperature)
        chosen = best if chosen is None else jnp.concatenate([chosen, best], axis=-1)
    return chosen


def energy_landscape(model: nnx.Module, inputs: dict[str, jax.Array], grid: jax.Array) -> jax.Array:
    """Energies (B, G) of the candidate actions ``grid`` (G, A) for each example (plots)."""
    embedding = _embed(model, inputs)
    candidates = jnp.broadcast_to(grid[None], (embedding.shape[0], *grid.shape))
    return model.energy_from_embedding(embedding, candidates)
