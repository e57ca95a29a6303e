"""Implicit BC: samplers, losses, energy networks, MDN likelihood, and the training loop's
checkpoint / resume / config / NaN-guard behaviour on a tiny particle run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx
from scipy import stats

from worldsim.agents.bc.models import mdn_log_likelihood
from worldsim.agents.ibc.agent import _autoregressive_predict
from worldsim.agents.ibc.losses import gradient_penalty, info_nce
from worldsim.agents.ibc.networks import StateEnergyModel
from worldsim.agents.ibc.samplers import (ActionBounds, derivative_free_optimize,
                                          langevin_optimize, resample_indices)
from worldsim.configs.ibc.base import base_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
UNIT_BOX = ActionBounds(jnp.array([-1.0, -1.0]), jnp.array([1.0, 1.0]))
# Two rows with different minima, both inside [-1, 1]^2.
CENTRES = jnp.array([[0.3, -0.5], [-0.7, 0.6]])


def _bowl(y):
    """E(y) = ||y - c_b||^2 for row b: (B, N, 2) -> (B, N)."""
    return jnp.sum(jnp.square(y - CENTRES[:, None, :]), axis=-1)


# --- samplers ---------------------------------------------------------------------------------

def test_dfo_finds_the_minimum_of_a_bowl():
    optimize = jax.jit(lambda key: derivative_free_optimize(_bowl, key, 2, UNIT_BOX, 4096))
    best, samples, energies = optimize(jax.random.key(0))
    assert best.shape == (2, 2) and samples.shape == (2, 4096, 2) and energies.shape == (2, 4096)
    np.testing.assert_allclose(best, CENTRES, atol=0.05)
    # The returned best is the argmin of the returned (final) energies.
    np.testing.assert_allclose(_bowl(best[:, None])[:, 0], energies.min(axis=1), rtol=1e-5)
    assert np.all(np.asarray(samples) >= -1.0) and np.all(np.asarray(samples) <= 1.0)


def test_dfo_iterations_refine_beyond_uniform_sampling():
    """With few samples the resample-and-perturb iterations must beat the uniform draw alone."""
    @jax.jit
    def errors(keys):
        def error(key, iterations):
            best, _, _ = derivative_free_optimize(_bowl, key, 2, UNIT_BOX, num_samples=256,
                                                  iterations=iterations, temperature=0.1)
            return jnp.linalg.norm(best - CENTRES, axis=-1).max()

        return (jax.vmap(lambda k: error(k, 3))(keys), jax.vmap(lambda k: error(k, 0))(keys))

    refined, uniform = map(np.asarray, errors(jax.random.split(jax.random.key(0), 8)))
    assert max(refined) < 0.05
    assert np.mean(refined) < 0.5 * np.mean(uniform)


def test_dfo_respects_bounds_when_the_minimum_lies_outside():
    centre = jnp.array([[1.5, 0.2]])
    energy = lambda y: jnp.sum(jnp.square(y - centre[:, None]), -1)  # noqa: E731
    optimize = jax.jit(lambda key: derivative_free_optimize(energy, key, 1, UNIT_BOX, 2048)[0])
    best = optimize(jax.random.key(1))
    np.testing.assert_allclose(best, [[1.0, 0.2]], atol=0.05)
    assert float(best[0, 0]) <= 1.0


def test_langevin_finds_the_minimum_of_a_bowl():
    optimize = jax.jit(lambda key: langevin_optimize(_bowl, key, 2, UNIT_BOX, num_samples=64,
                                                     steps=100))
    best, samples, energies = optimize(jax.random.key(0))
    assert best.shape == (2, 2) and samples.shape == (2, 64, 2) and energies.shape == (2, 64)
    np.testing.assert_allclose(best, CENTRES, atol=0.05)
    # The chains moved the bulk of the (uniform) initial samples towards the minimum.
    assert float(jnp.linalg.norm(samples - CENTRES[:, None], axis=-1).mean()) < 0.2


class _CoordinateBowl:
    """A hand-set stand-in for one StateEnergyModel of AutoregressiveEnergyModel: the observation
    is the embedding; dimension 0 wants y0 = obs0, dimension 1 wants y1 = obs1 - 0.8 * y0
    (so the second minimum depends on the first coordinate already chosen)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def encode(self, obs):
        return obs

    def energy_from_embedding(self, embedding, actions):
        assert actions.shape[-1] == self.dim + 1  # the prefix y_<j is passed along
        if self.dim == 0:
            return jnp.square(actions[..., 0] - embedding[:, None, 0])
        target = embedding[:, None, 1] - 0.8 * actions[..., 0]
        return jnp.square(actions[..., 1] - target)


def test_autoregressive_dfo_optimises_coordinate_by_coordinate():
    model = type("HandSetAutoregressive", (), {})()
    model.models = [_CoordinateBowl(0), _CoordinateBowl(1)]
    ibc = ml_collections.ConfigDict({"inference_samples": 512, "dfo_iterations": 3,
                                     "dfo_noise": 0.33, "dfo_noise_shrink": 0.5,
                                     "temperature": 0.1})
    obs = jnp.array([[0.3, -0.5], [-0.7, -0.2]])
    predict = jax.jit(lambda o, key: _autoregressive_predict(model, {"obs": o}, key, UNIT_BOX, ibc))
    chosen = predict(obs, jax.random.key(0))
    expected = np.array([[0.3, -0.5 - 0.8 * 0.3], [-0.7, -0.2 + 0.8 * 0.7]])
    np.testing.assert_allclose(chosen, expected, atol=0.05)


def test_resample_indices_follow_the_softmax():
    probabilities = np.array([0.1, 0.2, 0.3, 0.4])
    logits = jnp.asarray(np.log(probabilities) + 3.0)[None]  # softmax ignores the offset
    count = 20_000
    picks = np.asarray(resample_indices(jax.random.key(0), logits, count))
    assert picks.shape == (1, count)
    observed = np.bincount(picks[0], minlength=4)
    expected = probabilities * count
    chi_square = float(np.sum((observed - expected) ** 2 / expected))
    assert chi_square < stats.chi2.ppf(0.999, df=3), (observed, expected)
    # A (near-)zero-probability entry is never drawn, and rows are independent distributions.
    rows = jnp.array([[0.0, -1e9, 0.0], [-1e9, -1e9, 0.0]])
    picks = np.asarray(resample_indices(jax.random.key(1), rows, 5000))
    assert set(np.unique(picks[0])) == {0, 2}
    assert np.all(picks[1] == 2)


# --- losses -----------------------------------------------------------------------------------

def test_info_nce_matches_a_hand_computation():
    energies = [[1.0, 2.0, 0.5],  # the positive (last) has the lowest energy: correct
                [3.0, 0.0, 1.0]]  # a counter-example beats the positive: wrong
    temperature = 0.5

    def row_loss(row):
        logits = [-e / temperature for e in row]
        return -(logits[-1] - math.log(sum(math.exp(v) for v in logits)))

    expected = (row_loss(energies[0]) + row_loss(energies[1])) / 2
    loss, accuracy = info_nce(jnp.array(energies), temperature)
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert float(accuracy) == pytest.approx(0.5)
    # Hand numbers: row 0: 1 + log(e^-2 + e^-4 + e^-1); row 1: 2 + log(e^-6 + 1 + e^-2).
    assert expected == pytest.approx(
        (1 + math.log(math.exp(-2) + math.exp(-4) + math.exp(-1))
         + 2 + math.log(math.exp(-6) + 1 + math.exp(-2))) / 2)


def test_gradient_penalty_of_a_linear_energy():
    """E_b(y) = w_b . y has dE/dy = w_b everywhere: penalty = mean max(0, |w_b|_inf - M)^2."""
    actions = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 5, 2)), jnp.float32)

    def linear(weights):
        return lambda y: jnp.einsum("bna,ba->bn", y, weights)

    small = jnp.array([[0.3, -0.2], [0.9, 0.1]])
    assert float(gradient_penalty(linear(small), actions, margin=1.0)) == 0.0
    weights = jnp.array([[2.5, -4.0], [0.5, 1.5]])
    expected = (max(0.0, 4.0 - 1.0) ** 2 + max(0.0, 1.5 - 1.0) ** 2) / 2
    assert float(gradient_penalty(linear(weights), actions, margin=1.0)) == pytest.approx(expected)
    margin_two = gradient_penalty(linear(weights), actions, margin=2.0)
    assert float(margin_two) == pytest.approx((4.0 - 2.0) ** 2 / 2)
    # The penalty's gradient reaches the energy parameters:
    # d/dw[0, 1] = (1/2) * 2 * (4 - 1) * sign(-4) = -3, d/dw[1, 1] = (1/2) * 2 * (1.5 - 1) = 0.5.
    grad = jax.grad(lambda w: gradient_penalty(linear(w), actions, 1.0))(weights)
    np.testing.assert_allclose(grad, [[0.0, -3.0], [0.0, 0.5]], atol=1e-6)


# --- networks ---------------------------------------------------------------------------------

def _numpy_concat_mlp(model: StateEnergyModel, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """The concatenating MLP E(concat(obs, action)) rebuilt in numpy from the model's weights."""
    value = lambda variable: np.asarray(variable[...], np.float64)  # noqa: E731
    relu = lambda x: np.maximum(x, 0.0)  # noqa: E731
    kernel = np.concatenate([value(model.obs_projection.kernel),
                             value(model.action_projection.kernel)], axis=0)  # (D + A, W)
    tiled = np.broadcast_to(obs[:, None], (*actions.shape[:2], obs.shape[-1]))
    h = np.concatenate([tiled, actions], axis=-1) @ kernel + value(model.obs_projection.bias)
    for block in model.trunk.blocks:
        inner = relu(h) @ value(block.first.kernel) + value(block.first.bias)
        h = h + relu(inner) @ value(block.second.kernel) + value(block.second.bias)
    return (relu(h) @ value(model.head.kernel) + value(model.head.bias))[..., 0]


def test_state_energy_late_fusion_equals_concatenation():
    model = StateEnergyModel(obs_dim=3, action_dim=2, width=16, depth=4, rngs=nnx.Rngs(0))
    assert len(model.trunk.blocks) == 2
    obs = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    actions = np.random.default_rng(1).uniform(-1, 1, size=(4, 7, 2)).astype(np.float32)
    energies = np.asarray(model(jnp.asarray(obs), jnp.asarray(actions)))
    assert energies.shape == (4, 7)
    np.testing.assert_allclose(energies, _numpy_concat_mlp(model, obs, actions), rtol=1e-4,
                               atol=1e-6)
    # First layer: Dense_obs(obs) + Dense_action(a) == Dense([obs; a]).
    first = np.asarray(model.encode(obs))[:, None] + np.asarray(
        model.action_projection(jnp.asarray(actions)))
    stacked = np.concatenate([np.asarray(model.obs_projection.kernel[...]),
                              np.asarray(model.action_projection.kernel[...])], axis=0)
    joined = np.concatenate([np.broadcast_to(obs[:, None], (4, 7, 3)), actions], -1)
    np.testing.assert_allclose(first, joined @ stacked + np.asarray(model.obs_projection.bias[...]),
                               rtol=1e-5, atol=1e-6)
    # The energy of a candidate does not depend on the other candidates.
    single = np.asarray(model(jnp.asarray(obs), jnp.asarray(actions[:, 3:4])))
    np.testing.assert_allclose(single[:, 0], energies[:, 3], rtol=1e-5, atol=1e-6)


# --- MDN ----------------------------------------------------------------------------------------

def test_mdn_log_likelihood_matches_scipy_for_two_components():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 2))
    means = rng.normal(size=(3, 2, 2))
    log_stds = rng.normal(scale=0.5, size=(3, 2, 2))
    actions = rng.normal(size=(3, 2))
    weights = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    expected = [np.log(sum(weights[b, k] * stats.multivariate_normal.pdf(
        actions[b], means[b, k], np.diag(np.exp(2 * log_stds[b, k]))) for k in range(2)))
        for b in range(3)]
    got = mdn_log_likelihood(*(jnp.asarray(x, jnp.float32)
                               for x in (logits, means, log_stds, actions)))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


# --- training loop: resume, config checks, loading, NaN guard --------------------------------

@pytest.fixture(scope="module")
def particle_dataset(tmp_path_factory):
    from worldsim.data import collect

    return collect("worldsim/Particle-v0", episodes=30, num_envs=1, progress=False,
                   overwrite=True, out=tmp_path_factory.mktemp("ibc") / "particle")


def _tiny_config(dataset, steps: int = 40) -> ml_collections.ConfigDict:
    config = base_config("worldsim/Particle-v0", str(dataset))
    config.data.batch_size = 32
    config.model.width, config.model.depth = 32, 2
    config.ibc.num_negatives, config.ibc.inference_samples = 16, 256
    config.train.steps, config.train.checkpoint_every, config.train.log_every = steps, 20, 10
    return config


def _params(model) -> dict:
    return jax.tree.map(np.asarray, nnx.state(model, nnx.Param).to_pure_dict())


def _metrics(workdir) -> list[dict]:
    rows = [json.loads(line) for line in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("steps_per_sec")
    return rows


def test_resume_matches_an_uninterrupted_run(particle_dataset, tmp_path):
    from worldsim.agents import load
    from worldsim.agents.training import make_train_task
    from worldsim.train.checkpoint import Checkpointer
    from worldsim.train.loop import ConfigMismatch, train

    straight = train(_tiny_config(particle_dataset, 40), tmp_path / "straight",
                     make_train_task(_tiny_config(particle_dataset, 40)), progress=False)

    resumed_dir = tmp_path / "resumed"
    first = train(_tiny_config(particle_dataset, 20), resumed_dir,
                  make_train_task(_tiny_config(particle_dataset, 20)), progress=False)
    half = _params(first)
    resumed = train(_tiny_config(particle_dataset, 40), resumed_dir,
                    make_train_task(_tiny_config(particle_dataset, 40)), progress=False)

    final = _params(resumed)
    jax.tree.map(np.testing.assert_array_equal, final, _params(straight))
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(half),
                                                         jax.tree.leaves(final)))
    assert _metrics(resumed_dir) == _metrics(tmp_path / "straight")
    assert [r["step"] for r in _metrics(resumed_dir)] == [10, 20, 30, 40]
    checkpointer = Checkpointer(resumed_dir)
    assert checkpointer.latest_step() == 40
    checkpointer.close()

    # The loaded policy holds exactly the trained parameters.
    policy = load(resumed_dir)
    jax.tree.map(np.testing.assert_array_equal, _params(policy.model), final)

    # Re-running the finished command is a no-op; a different config is refused by name.
    again = train(_tiny_config(particle_dataset, 40), resumed_dir,
                  make_train_task(_tiny_config(particle_dataset, 40)), progress=False)
    jax.tree.map(np.testing.assert_array_equal, _params(again), final)
    changed = _tiny_config(particle_dataset, 40)
    changed.model.width = 64
    with pytest.raises(ConfigMismatch, match=r"model\.width: 32 != 64"):
        train(changed, resumed_dir, make_train_task(_tiny_config(particle_dataset, 40)),
              progress=False)


def test_unknown_override_names_the_nearest_keys():
    from worldsim.train.configuration import ConfigError, apply_override, load_config

    path = CONFIGS / "ibc" / "particle.py"
    config = load_config(path, ["--config.train.steps=7", "--config.train.learning_rate=1"])
    assert config.train.steps == 7 and config.train.learning_rate == 1.0
    assert isinstance(config.train.learning_rate, float)
    with pytest.raises(ConfigError, match=r"'train\.stepz'.*nearest valid keys: train\.steps"):
        load_config(path, ["--config.train.stepz=5"])
    with pytest.raises(ConfigError, match=r"ibc\.num_negatives"):
        apply_override(config, "--config.ibc.num_negative=5")


def test_load_without_checkpoint_says_so(tmp_path):
    from worldsim.agents import load

    with pytest.raises(FileNotFoundError, match="has no checkpoint"):
        load(tmp_path)


def test_dataset_of_another_env_is_refused_before_training(particle_dataset, tmp_path):
    from worldsim.agents.training import make_train_task
    from worldsim.data import IncompatibleDatasetError

    config = _tiny_config(particle_dataset)
    config.env_kwargs.n_dim = 3  # a 3-D particle env: every key and the action are 3-D
    with pytest.raises(IncompatibleDatasetError, match=r"pos_agent.*shape \(2,\) vs \(3,\)"):
        make_train_task(config)
    config = _tiny_config(particle_dataset)
    config.env_id = "worldsim/BlockPush-v0"
    with pytest.raises(IncompatibleDatasetError, match="does not match worldsim/BlockPush-v0"):
        make_train_task(config)


def _linear_task(poison_from: int):
    """A hand-made TrainTask whose loss turns NaN from batch ``poison_from`` on."""
    from worldsim.train.loop import TrainTask

    def loss_fn(model, batch, key):
        loss = jnp.mean(jnp.square(model(batch["x"]))) * batch["scale"]
        return loss, {}

    def batch_at(step):
        scale = np.float32(np.nan if step >= poison_from else 1.0)
        return {"x": np.ones((4, 2), np.float32), "scale": scale}

    return TrainTask(nnx.Linear(2, 1, rngs=nnx.Rngs(0)), loss_fn, batch_at, {})


def test_nan_loss_raises_training_diverged(tmp_path):
    from worldsim.train.checkpoint import Checkpointer
    from worldsim.train.loop import TrainingDiverged, train

    config = base_config("worldsim/Particle-v0", "unused")
    config.train.steps, config.train.log_every, config.train.checkpoint_every = 10, 1, 2
    config.train.microbatches = 1  # the toy batch has a scalar leaf
    with pytest.raises(TrainingDiverged,
                       match=r"diverged at step 4: .* = nan\. The last good checkpoint is step 2"):
        train(config, tmp_path, _linear_task(poison_from=3), progress=False)
    checkpointer = Checkpointer(tmp_path)
    assert checkpointer.latest_step() == 2  # nothing diverged was saved over it
    state, _ = checkpointer.restore(None)
    checkpointer.close()
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(state))



def test_spectral_norm_bounds_the_largest_singular_value():
    from flax import nnx as _nnx
    import jax as _jax
    import numpy as _np

    from worldsim.agents.ibc.networks import SpectralNormLinear, StateEnergyModel

    from worldsim.agents.ibc.networks import update_spectral_norms

    layer = SpectralNormLinear(16, 8, _nnx.Rngs(0))
    layer.kernel[...] = layer.kernel[...] * 40.0  # σ(W) far above 1
    u_before = _np.asarray(layer.u[...])
    layer(_jax.numpy.ones((1, 16)))
    _np.testing.assert_array_equal(_np.asarray(layer.u[...]), u_before)  # calling never updates u
    for _ in range(30):
        layer.power_iteration()
    sigma = _np.linalg.svd(_np.asarray(layer.normalized_kernel()), compute_uv=False)[0]
    assert abs(sigma - 1.0) < 1e-3
    model = StateEnergyModel(4, 2, 16, 4, spectral_norm=True, rngs=_nnx.Rngs(1))
    assert model(_jax.numpy.ones((3, 4)), _jax.numpy.zeros((3, 5, 2))).shape == (3, 5)
    first = model.trunk.blocks[0].first
    first_u = _np.asarray(first.u[...])
    update_spectral_norms(model)
    assert not _np.array_equal(_np.asarray(first.u[...]), first_u)


def test_sigterm_saves_the_current_step_before_stopping(particle_dataset, tmp_path):
    import os
    import signal

    from worldsim.agents.training import make_train_task
    from worldsim.train.checkpoint import Checkpointer
    from worldsim.train.loop import train

    config = _tiny_config(particle_dataset, 40)
    task = make_train_task(config)
    batch_at = task.batch_at

    def preempted_at_step_13(step):
        if step == 13:
            os.kill(os.getpid(), signal.SIGTERM)
        return batch_at(step)

    task.batch_at = preempted_at_step_13
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "run", task, progress=False)
    checkpointer = Checkpointer(tmp_path / "run")
    assert checkpointer.latest_step() == 13  # not the step-10 checkpoint: nothing lost
    checkpointer.close()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
