"""Sparse MoE layers: capacity, K-major priority and BPR, dispatch back-ends, router losses,
LIMoE entropy losses and task-level routing with extraction."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from worldsim.nn import (LimoeMlp, MoeConfig, VisionTransformer, build_moe_mlp, compute_capacity,
                         dispatch_einsum, dispatch_gather, entropy_losses, extract_task_network,
                         importance_loss, load_loss, moe_layer_indices, route_top_k, vit_variant)

# (S, E, K, cf) → C, from reference/backbones.md §3.3
CAPACITY_CASES = [((400, 8, 2, 1.05), 108), ((400, 8, 2, 4.0), 400), ((1576, 8, 2, 1.05), 416),
                  ((4616, 8, 2, 1.5), 1732), ((32, 32, 2, 1.0), 4)]

# vmoe golden test: 3 tokens, 3 experts, K = 2, C = 2
GOLDEN_GATES = jnp.array([[[.4, .0, .2], [.5, .1, .4], [.3, .2, .6]]])

from nn_test_helpers import _fast_jit, _normal  # noqa: E402


@pytest.mark.parametrize("args,expected", CAPACITY_CASES)
def test_capacity_formula(args, expected):
    assert compute_capacity(*args) == expected


@pytest.mark.parametrize("factor", [0.0, -1.0])
def test_capacity_factor_must_be_positive(factor):
    with pytest.raises(ValueError, match=rf"capacity_factor={factor}.*> 0"):
        compute_capacity(16, 4, 2, factor)
    with pytest.raises(ValueError, match=rf"capacity_factor={factor}.*> 0"):
        MoeConfig(capacity_factor=factor)


def test_config_errors_name_the_allowed_values():
    with pytest.raises(ValueError, match="dispatch='ragged'.*gather, einsum"):
        MoeConfig(dispatch="ragged")
    with pytest.raises(ValueError, match=r"k=3.*\[1, num_experts=2\]"):
        MoeConfig(num_experts=2, k=3)
    with pytest.raises(ValueError, match="layers='middle'.*every_2"):
        moe_layer_indices(8, "middle")


def test_moe_layer_placement():
    assert moe_layer_indices(8, "every_2") == (1, 3, 5, 7)
    assert moe_layer_indices(8, "last_2") == (5, 7)
    assert moe_layer_indices(32, "last_5") == (23, 25, 27, 29, 31)
    assert moe_layer_indices(12, (0, 11)) == (0, 11)


def test_golden_k_major_slots():
    r = route_top_k(GOLDEN_GATES, k=2, capacity=2, batch_priority=False)
    assert r.experts[0].tolist() == [[0, 2], [0, 2], [2, 0]]
    assert r.slots[0].tolist() == [[0, 1], [1, 2], [0, 2]]
    assert r.valid[0].tolist() == [[True, True], [True, False], [True, False]]
    np.testing.assert_allclose(r.weights[0], [[.4, .2], [.5, .4], [.6, .3]])


def test_golden_batch_priority_routing():
    r = route_top_k(GOLDEN_GATES, k=2, capacity=2, batch_priority=True)
    assert r.experts[0].tolist() == [[0, 2], [0, 2], [2, 0]]
    assert r.slots[0].tolist() == [[1, 2], [0, 1], [0, 2]]
    assert r.valid[0].tolist() == [[True, False], [True, True], [True, False]]


@pytest.mark.parametrize("dispatch", [dispatch_einsum, dispatch_gather])
@pytest.mark.parametrize("bpr,served", [(False, [.6, .5, .6]), (True, [.4, .9, .6])])
def test_golden_combine_weights(dispatch, bpr, served):
    """With identity experts, token t comes back times the sum of its kept combine weights."""
    x = jnp.eye(3)[None]
    routing = route_top_k(GOLDEN_GATES, 2, 2, bpr)
    y = dispatch(x, routing, 2, 3, lambda buffers: buffers)
    np.testing.assert_allclose(y[0], np.diag(served), atol=1e-7)


def test_bpr_drops_the_least_confident_tokens():
    # 8 tokens all prefer expert 0 with confidence rising with the token index; C = 4, K = 1
    logits = jnp.stack([jnp.linspace(0.5, 4.0, 8), jnp.zeros(8)], axis=1)[None]
    gates = jax.nn.softmax(logits)
    vanilla = route_top_k(gates, 1, 4, batch_priority=False).valid[0, :, 0]
    bpr = route_top_k(gates, 1, 4, batch_priority=True).valid[0, :, 0]
    assert vanilla.tolist() == [True] * 4 + [False] * 4   # first come, first served
    assert bpr.tolist() == [False] * 4 + [True] * 4       # most confident served


def test_top2_choice_waits_for_all_top1_choices():
    # token 0 picks (e0, e1); tokens 1, 2 pick e1 first: with C = 2, token 0's second choice
    # comes after both top-1 claims on e1 and is dropped, though token 0 is first in order
    gates = jnp.array([[[.6, .4], [.1, .9], [.2, .8]]])
    r = route_top_k(gates, 2, 2, batch_priority=False)
    assert r.valid[0].tolist() == [[True, False], [True, True], [True, False]]


DIM, HIDDEN = 64, 256  # the "mu" ViT sizes: the tests share compiled initialisers


def _layer(**overrides):
    config = dict(num_experts=4, k=2, capacity_factor=0.5, shared_expert_init=False,
                  batch_priority=True)
    return build_moe_mlp(DIM, HIDDEN, MoeConfig(**{**config, **overrides}), rngs=nnx.Rngs(0))


@_fast_jit
def _train_forward_and_grads(layer, x):
    def loss(layer):
        y, aux = layer(x, train=True, rngs=nnx.Rngs(7))
        return jnp.sum(y * jnp.cos(x)), (y, aux)
    return nnx.grad(loss, has_aux=True)(layer)


_evaluate = _fast_jit(lambda layer, x, *ids: layer(x, modality_ids=ids[0] if ids else None))


def test_dispatch_backends_agree_with_drops_and_noise():
    x = _normal(1, (4, 8, DIM))
    grads_g, (y_g, aux_g) = _train_forward_and_grads(_layer(group_size=16), x)
    grads_e, (y_e, aux_e) = _train_forward_and_grads(_layer(group_size=16, dispatch="einsum"), x)
    assert float(aux_g["dropped_choice_fraction"]) > 0  # cf 0.5: the buffers overflow
    np.testing.assert_allclose(y_g, y_e, atol=1e-6)
    for name in aux_g:
        np.testing.assert_allclose(aux_g[name], aux_e[name], atol=1e-7)
    for a, b in zip(jax.tree.leaves(grads_g), jax.tree.leaves(grads_e)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_router_metrics_and_eval_keeps_every_token():
    layer = _layer()
    x = _normal(2, (4, 8, DIM))
    y, aux = _evaluate(layer, x)  # eval: C = S, nothing dropped, no noise, no load loss
    assert y.shape == x.shape
    assert float(aux["dropped_token_fraction"]) == 0.0 and float(aux["load_loss"]) == 0.0
    np.testing.assert_allclose(aux["expert_load"].sum(), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(_evaluate(layer, x)[0], y)  # deterministic
    with pytest.raises(ValueError, match="group_size=5 does not divide"):
        _layer(group_size=5)(x)


def _cv2(v):
    v = np.asarray(v, np.float64)
    return v.std() ** 2 / v.mean() ** 2


def _phi(z):
    return 0.5 * (1 + np.vectorize(math.erf)(np.asarray(z, np.float64) / math.sqrt(2)))


def _numpy_load_loss(logits, noisy, sigma, k):
    threshold = np.sort(noisy, axis=-1)[:, -k]  # K-th largest noisy logit per token
    return _cv2(np.mean(1 - _phi((threshold[:, None] - logits) / sigma), axis=0))


def test_importance_and_load_losses_match_the_formulas():
    gates = jnp.array([[.7, .2, .1], [.6, .3, .1], [.1, .1, .8], [.5, .25, .25]])
    np.testing.assert_allclose(importance_loss(gates), _cv2([1.9, .85, 1.25]), rtol=1e-5)

    logits = jnp.array([[1.0, 0.5, -0.2], [0.1, 0.3, 0.0]])
    noisy = jnp.array([[0.9, 0.7, -0.1], [0.2, 0.1, 0.05]])
    sigma, k = 1 / 3, 2
    thresholds = np.array([0.7, 0.1])  # K-th (2nd) largest noisy logit per token
    p = 1 - _phi((thresholds[:, None] - np.asarray(logits)) / sigma)
    np.testing.assert_allclose(load_loss(logits, noisy, sigma, k), _cv2(p.mean(0)), rtol=1e-5)
    np.testing.assert_allclose(_numpy_load_loss(np.asarray(logits), np.asarray(noisy), sigma, k),
                               _cv2(p.mean(0)))


def test_router_noise_is_one_over_e_and_losses_are_weighted():
    @_fast_jit
    def route(layer, x):
        logits = layer.router.gate(x)
        key = nnx.Rngs(5).gating()  # the key the router draws from an identical nnx.Rngs(5)
        noisy = logits + 0.25 * jax.random.normal(key, logits.shape)  # σ = 1 / E
        return logits, noisy, layer.router(x, train=True, rngs=nnx.Rngs(5))

    logits, noisy, (gates, clean, aux) = route(_layer(), _normal(3, (4, 8, DIM)))
    np.testing.assert_allclose(gates, jax.nn.softmax(noisy), atol=1e-6)
    np.testing.assert_allclose(clean, jax.nn.softmax(logits), atol=1e-6)
    loads = [_numpy_load_loss(a, b, 0.25, 2) for a, b in zip(np.asarray(logits),
                                                              np.asarray(noisy))]
    np.testing.assert_allclose(aux["load_loss"], np.mean(loads), rtol=1e-4)  # per group, mean
    expected = 0.005 * aux["importance_loss"] + 0.005 * aux["load_loss"]
    np.testing.assert_allclose(aux["aux_loss"], expected, rtol=1e-6)


def test_limoe_entropy_losses_and_threshold():
    gates = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.5, 0.5], [0.5, 0.5]])
    modality = jnp.array([0, 0, 1, 1])
    out = entropy_losses(gates, modality, 2, threshold=math.log(2))
    np.testing.assert_allclose(out["local_entropy/0"], 0.0, atol=1e-6)       # one-hot routing
    np.testing.assert_allclose(out["local_entropy/1"], math.log(2), rtol=1e-5)
    np.testing.assert_allclose(out["global_entropy/0"], math.log(2), rtol=1e-5)  # one expert used
    np.testing.assert_allclose(out["global_entropy/1"], 0.0, atol=1e-6)      # at the threshold
    below = entropy_losses(gates, modality, 2, threshold=0.5 * math.log(2))
    np.testing.assert_allclose(below["global_entropy/0"], 0.5 * math.log(2), rtol=1e-5)


def test_limoe_layer_adds_weighted_entropy_to_aux_loss():
    layer = _layer(local_entropy_weight=0.1, global_entropy_weight=0.2)
    assert isinstance(layer, LimoeMlp)
    x = _normal(4, (4, 8, DIM))
    modality = jnp.repeat(jnp.array([[0] * 6 + [1] * 2]), 4, axis=0)  # 6 patches, 2 words
    _, aux = _evaluate(layer, x, modality)
    expected = (0.005 * aux["importance_loss"] + 0.1 * aux["local_entropy"]
                + 0.2 * aux["global_entropy"])
    np.testing.assert_allclose(aux["aux_loss"], expected, rtol=1e-6)


def test_task_extraction_matches_full_model_with_fewer_parameters():
    config = MoeConfig(num_experts=4, k=2, router="task", num_tasks=3, shared_expert_init=False)
    model = VisionTransformer(**dict(vit_variant("mu/8"), depth=2), image_size=16, num_classes=7,
                              moe=config, rngs=nnx.Rngs(0))
    model.head.kernel.set_value(_normal(1, model.head.kernel.shape))
    images = _normal(2, (3, 16, 16, 3))
    count = lambda m: sum(x.size for x in jax.tree.leaves(nnx.state(m, nnx.Param)))  # noqa: E731
    run_full = _fast_jit(lambda m, x, tasks: m(x, task_ids=tasks)[0])
    run_small = _fast_jit(lambda m, x: m(x)[0])
    outputs = []
    for task in range(3):
        full = run_full(model, images, jnp.full((3,), task))
        small = extract_task_network(model, task)
        alone = run_small(small, images)
        np.testing.assert_allclose(alone, full, rtol=1e-5, atol=1e-5)
        assert count(small) < count(model) - 2 * 2 * DIM * HIDDEN  # 2 of 4 experts dropped
        outputs.append(full)
    assert not np.allclose(outputs[0], outputs[1])  # tasks really use different experts
    with pytest.raises(ValueError, match="task_id=3; allowed: 0 … 2"):
        extract_task_network(model, 3)
