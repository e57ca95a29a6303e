"""Action samplers over an energy landscape, shared by training (counter-examples) and acting.

Every sampler takes ``energy_fn: (B, N, A) actions -> (B, N) energies`` (lower is better; the
observation is already bound in) and works in normalised action units inside ``bounds``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

EnergyFn = Callable[[jax.Array], jax.Array]


class ActionBounds(NamedTuple):
    """Per-dimension sampling box in normalised action units: low, high (A,)."""

    low: jax.Array
    high: jax.Array

    @classmethod
    def from_normalization(cls, action_min: np.ndarray, action_max: np.ndarray,
                           space_low: np.ndarray, space_high: np.ndarray,
                           buffer: float = 0.05) -> "ActionBounds":
        """Dataset [min, max] widened by ``buffer`` × range on each side, clipped to the env's
        action space, expressed in the [-1, 1] units of the min-max action normalisation."""
        span = np.maximum(action_max - action_min, 1e-6)
        low = np.maximum(action_min - buffer * span, space_low)
        high = np.minimum(action_max + buffer * span, space_high)
        to_unit = lambda a: 2.0 * (a - action_min) / span - 1.0  # noqa: E731
        return cls(jnp.asarray(to_unit(low), jnp.float32), jnp.asarray(to_unit(high), jnp.float32))


def uniform_actions(key: jax.Array, bounds: ActionBounds, shape: tuple[int, ...]) -> jax.Array:
    """Uniform samples of shape (*shape, A) inside ``bounds``."""
    return jax.random.uniform(key, (*shape, bounds.low.shape[0]), minval=bounds.low,
                              maxval=bounds.high)


def resample_indices(key: jax.Array, logits: jax.Array, count: int) -> jax.Array:
    """``count`` indices per row drawn with replacement from softmax(logits) (B, N) → (B, count).

    Inverse-CDF sampling, O(N log N) per row (a Gumbel-max draw would cost O(N·count)).
    """
    cdf = jnp.cumsum(jax.nn.softmax(logits, axis=-1), axis=-1)
    uniforms = jax.random.uniform(key, (logits.shape[0], count)) * cdf[:, -1:]
    picks = jax.vmap(jnp.searchsorted)(cdf, uniforms)
    return jnp.minimum(picks, logits.shape[1] - 1)


def derivative_free_optimize(energy_fn: EnergyFn, key: jax.Array, batch_size: int,
                             bounds: ActionBounds, num_samples: int = 16384, iterations: int = 3,
                             noise_scale: float = 0.33, noise_shrink: float = 0.5,
                             temperature: float = 1.0) -> tuple[jax.Array, jax.Array, jax.Array]:
    """IBC Algorithm 1: iterated importance resampling with shrinking Gaussian noise.

    Returns (best (B, A), final samples (B, N, A), their energies (B, N)). The best action is
    the argmin of energies re-evaluated on the *final* samples (the released code took the
    argmax of stale probabilities over resampled actions — not copied).
    """
    key, init_key = jax.random.split(key)
    samples = uniform_actions(init_key, bounds, (batch_size, num_samples))
    sigma = noise_scale
    for _ in range(iterations):
        key, pick_key, noise_key = jax.random.split(key, 3)
        picks = resample_indices(pick_key, -energy_fn(samples) / temperature, num_samples)
        samples = jnp.take_along_axis(samples, picks[..., None], axis=1)
        samples = samples + sigma * jax.random.normal(noise_key, samples.shape)
        samples = jnp.clip(samples, bounds.low, bounds.high)
        sigma *= noise_shrink
    energies = energy_fn(samples)
    best = jnp.take_along_axis(samples, jnp.argmin(energies, axis=1)[:, None, None], axis=1)[:, 0]
    return best, samples, energies


def polynomial_step_sizes(steps: int, start: float = 0.1, end: float = 1e-5,
                          power: float = 2.0) -> jax.Array:
    """λ_k = (start − end)·(1 − k/(K−1))^power + end, k = 0..K−1."""
    fraction = jnp.arange(steps) / max(steps - 1, 1)
    return (start - end) * (1.0 - fraction) ** power + end


def langevin_chain(energy_fn: EnergyFn, key: jax.Array, samples: jax.Array, bounds: ActionBounds,
                   steps: int = 100, step_start: float = 0.1, step_end: float = 1e-5,
                   power: float = 2.0, noise_scale: float = 1.0,
                   delta_clip: float = 0.1) -> jax.Array:
    """Langevin MCMC from ``samples`` (B, N, A): y ← clip(y − clip(λ(½∂E/∂y + s·ξ))).

    As in the original (and kept for parity), the noise is scaled by λ rather than √(2λ), and
    the step is clipped to ``delta_clip`` × half the bounds' range per dimension.
    """
    grad_fn = jax.grad(lambda y: energy_fn(y).sum())
    max_delta = delta_clip * 0.5 * (bounds.high - bounds.low)

    def step(y, inputs):
        step_size, step_key = inputs
        delta = step_size * (0.5 * grad_fn(y) + noise_scale * jax.random.normal(step_key, y.shape))
        y = jnp.clip(y - jnp.clip(delta, -max_delta, max_delta), bounds.low, bounds.high)
        return y, None

    sizes = polynomial_step_sizes(steps, step_start, step_end, power)
    samples, _ = jax.lax.scan(step, samples, (sizes, jax.random.split(key, steps)))
    return samples


def langevin_optimize(energy_fn: EnergyFn, key: jax.Array, batch_size: int, bounds: ActionBounds,
                      num_samples: int = 512, steps: int = 100, second_chain: bool = True,
                      **chain_kwargs) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Uniform init → Langevin chain (→ a second chain from its output) → lowest energy.

    Returns (best (B, A), samples (B, N, A), energies (B, N)).
    """
    init_key, first_key, second_key = jax.random.split(key, 3)
    samples = uniform_actions(init_key, bounds, (batch_size, num_samples))
    samples = langevin_chain(energy_fn, first_key, samples, bounds, steps, **chain_kwargs)
    if second_chain:
        samples = langevin_chain(energy_fn, second_key, samples, bounds, steps, **chain_kwargs)
    energies = energy_fn(samples)
    best = jnp.take_along_axis(samples, jnp.argmin(energies, axis=1)[:, None, None], axis=1)[:, 0]
    return best, samples, energies
