"""Implicit-BC losses: InfoNCE over counter-examples and the gradient penalty."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from worldsim.agents.ibc.samplers import EnergyFn


def info_nce(energies: jax.Array, temperature: float = 1.0) -> tuple[jax.Array, jax.Array]:
    """InfoNCE with the true action in the LAST column.

    energies: (B, N+1) — N counter-examples then the positive. Returns (mean loss, accuracy =
    fraction of rows whose positive has the lowest energy).
    """
    logits = -energies / temperature
    loss = -(logits[:, -1] - jax.nn.logsumexp(logits, axis=1))
    accuracy = (jnp.argmax(logits, axis=1) == energies.shape[1] - 1).mean()
    return loss.mean(), accuracy


def gradient_penalty(energy_fn: EnergyFn, actions: jax.Array, margin: float = 1.0) -> jax.Array:
    """mean over samples of max(0, ‖∂E/∂y‖_∞ − margin)², on stop-gradiented ``actions`` (B, N, A).

    Gradients of the penalty flow into the energy parameters only.
    """
    grads = jax.grad(lambda y: energy_fn(y).sum())(jax.lax.stop_gradient(actions))
    norms = jnp.max(jnp.abs(grads), axis=-1)
    return jnp.mean(jnp.square(jnp.maximum(norms - margin, 0.0)))
