"""Gradient accumulation over micro-batches in the shared training loop (train.microbatches)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from worldsim.train.loop import _check_microbatches, _make_train_step


class _Regressor(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(3, 8, rngs=rngs)
        self.dropout = nnx.Dropout(0.0, rngs=rngs)  # an RNG stream: state that is not a Param
        self.out = nnx.Linear(8, 1, rngs=rngs)

    def __call__(self, x):
        return self.out(self.dropout(jax.nn.relu(self.hidden(x))))[..., 0]


def _mse_loss(model, batch, key):
    error = jnp.mean((model(batch["x"]) - batch["y"]) ** 2)
    return error, {"mse": error}


def _one_step(microbatches: int):
    model = _Regressor(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
    graphdef, state = nnx.split((model, optimizer))
    rng = np.random.default_rng(0)
    batch = {"x": jnp.asarray(rng.normal(size=(16, 3)), jnp.float32),
             "y": jnp.asarray(rng.normal(size=(16,)), jnp.float32)}
    step = _make_train_step(graphdef, _mse_loss, microbatches)
    state, metrics = step(state, batch, jax.random.key(0))
    model, _ = nnx.merge(graphdef, state)
    return nnx.state(model, nnx.Param), metrics


def test_microbatched_step_is_the_full_batch_step():
    full_params, full_metrics = _one_step(1)
    sliced_params, sliced_metrics = _one_step(4)
    for a, b in zip(jax.tree.leaves(full_params), jax.tree.leaves(sliced_params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for name in ("loss", "mse", "grad_norm"):
        np.testing.assert_allclose(full_metrics[name], sliced_metrics[name], rtol=1e-5)


@pytest.mark.parametrize("microbatches, message", [(0, "positive integer"),
                                                   (2.5, "positive integer"),
                                                   (3, "does not divide the batch size 16")])
def test_bad_microbatch_counts_are_refused(microbatches, message):
    with pytest.raises(ValueError, match=message):
        _check_microbatches(microbatches, {"x": np.zeros((16, 3)), "y": np.zeros(16)})
