"""ViT, FiLM and TokenLearner: shapes, variants, identity initialisations, FLOP savings and
input errors. All models use the tiny "mu" sizes (width 64) so compiled ops are shared."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from worldsim.nn import (FiLM, MoeConfig, TokenFuser, TokenLearnerV1, TokenLearnerV11,
                         VisionTransformer, posemb_sincos_2d, vit_variant)

MU = dict(vit_variant("mu/8"), depth=2)
IMAGES = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)

from nn_test_helpers import _fast_jit, _normal  # noqa: E402


def _vit(**kwargs):
    return VisionTransformer(**{**MU, "image_size": 32, **kwargs}, rngs=nnx.Rngs(0))


# jitted forwards: one cheap compile per model instead of eager op-by-op compiles
_apply = _fast_jit(lambda model, images, context=None: model(images, context))
_learn = _fast_jit(lambda module, x: module(x))
_learn_video = _fast_jit(lambda module, x: module(x, video=True))


def _shape(model, *inputs) -> tuple[int, ...]:
    """Output shape by abstract evaluation (no compile); models return (out, aux)."""
    out = nnx.eval_shape(lambda m, *x: m(*x), model, *inputs)
    return (out[0] if isinstance(out, tuple) else out).shape


def _flops_and_shape(model, images) -> tuple[float, tuple[int, ...]]:
    graphdef, state = nnx.split(model)
    forward = lambda s, x: nnx.merge(graphdef, s)(x)[0]  # noqa: E731
    lowered = jax.jit(forward).lower(state, images)
    analysis = lowered.compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return float(analysis["flops"]), lowered.out_info.shape


def test_variants_follow_the_sheet():
    assert vit_variant("S/16") == dict(width=384, depth=12, mlp_dim=1536, num_heads=6,
                                       patch_size=16)
    assert vit_variant("Ti/16")["width"] == 192 and vit_variant("B/16")["num_heads"] == 12
    assert vit_variant("L/16")["depth"] == 24 and vit_variant("L/16")["mlp_dim"] == 4096
    assert vit_variant("mu/8") == dict(width=64, depth=4, mlp_dim=256, num_heads=2, patch_size=8)


@pytest.mark.parametrize("name", ["XL/16", "S", "S/x", "S/0"])
def test_unknown_variant_lists_the_allowed_names(name):
    with pytest.raises(ValueError, match=rf"{name!r}.*mu, Ti, S, vmoe-S, B, L, H"):
        vit_variant(name)


def test_image_size_must_be_divisible_by_the_patch():
    with pytest.raises(ValueError, match=r"image size \(30, 30\).*patch size 8.*multiples of 8"):
        VisionTransformer(**MU, image_size=30, rngs=nnx.Rngs(0))


def test_pools_and_outputs():
    logits, aux = _apply(_vit(num_classes=5), IMAGES)
    assert logits.shape == (2, 5) and aux["pre_logits"].shape == (2, 64)
    np.testing.assert_array_equal(logits, 0.0)  # zero-initialised head
    assert float(aux["aux_loss"]) == 0.0
    assert _shape(_vit(pool="map", posemb="learn"), IMAGES) == (2, 64)
    assert _shape(_vit(pool="none"), IMAGES) == (2, 16, 64)
    assert _shape(_vit(pool="tok", class_token=True), IMAGES) == (2, 64)
    with pytest.raises(ValueError, match=r"shape \(2, 16, 16, 3\).*\(batch, 32, 32, 3\)"):
        _vit()(IMAGES[:, :16, :16])
    with pytest.raises(ValueError, match="pool='max'.*gap, map, tok, none"):
        _vit(pool="max")


def test_sincos_posemb():
    pe = posemb_sincos_2d(4, 4, 64)
    assert pe.shape == (16, 64)
    np.testing.assert_allclose(pe[0], [0.0] * 16 + [1.0] * 16 + [0.0] * 16 + [1.0] * 16)
    assert len({tuple(np.round(row, 5)) for row in np.asarray(pe)}) == 16  # all distinct


def test_film_is_identity_at_init_and_conditions_after():
    film = FiLM(5, 64, rngs=nnx.Rngs(0))
    x = _normal(1, (2, 16, 64))
    context = _normal(2, (2, 5))
    np.testing.assert_array_equal(film(x, context), x)
    film.scale.kernel.set_value(jnp.ones((5, 64)))
    assert not np.allclose(film(x, context), x)
    model = _vit(pool="none", context_dim=5)
    with pytest.raises(ValueError, match="pass a context"):
        model(IMAGES)
    np.testing.assert_array_equal(_apply(model, IMAGES, context)[0],
                                  _apply(model, IMAGES, -context)[0])


def test_training_needs_rngs_for_dropout_and_router_noise():
    # (training forwards with dropout and router noise run in test_nn_sharding.py)
    for model in (_vit(dropout=0.1), _vit(moe=MoeConfig(num_experts=4))):
        with pytest.raises(ValueError, match="train=True needs rngs"):
            model(IMAGES, train=True)
    assert _shape(_vit(), IMAGES) == (2, 64)  # no dropout, no MoE: nothing random


@pytest.mark.parametrize("module", [TokenLearnerV1, TokenLearnerV11])
def test_token_learner_shapes(module):
    tl = module(64, 4, rngs=nnx.Rngs(0))
    x = _normal(0, (2, 3, 4, 4, 64))
    assert _shape(tl, x[0]) == (3, 4, 64)                            # feature maps
    per_image = _learn(tl, x[0].reshape(3, 16, 64))                  # tokens
    assert per_image.shape == (3, 4, 64)
    per_frame = _learn_video(tl, x.reshape(2, 3, 16, 64))            # tokens per frame
    assert per_frame.shape == (2, 3, 4, 64)
    np.testing.assert_allclose(per_frame[0], per_image, rtol=1e-5, atol=1e-6)
    assert nnx.eval_shape(lambda m, x: m(x, video=True), tl, x).shape == (2, 3, 4, 64)


def test_token_learner_v11_is_a_convex_combination_of_positions():
    tl = TokenLearnerV11(64, 4, rngs=nnx.Rngs(0))
    x = jnp.broadcast_to(jnp.arange(64.0), (3, 16, 64))  # every position identical
    expected = jnp.broadcast_to(x[:, :1], (3, 4, 64))
    np.testing.assert_allclose(_learn(tl, x), expected, rtol=1e-5)


def test_token_learner_errors():
    for bad in (0, -3):
        with pytest.raises(ValueError, match=rf"num_tokens={bad}.*integer ≥ 1"):
            TokenLearnerV11(64, bad, rngs=nnx.Rngs(0))
        with pytest.raises(ValueError, match=rf"num_tokens={bad}"):
            _vit(tokenlearner_layer=1, num_tokens=bad)
    with pytest.raises(ValueError, match="square token grid; got 12"):
        TokenLearnerV1(64, 4, rngs=nnx.Rngs(0))(jnp.ones((1, 12, 64)))
    with pytest.raises(ValueError, match=r"tokenlearner_layer=2; .*\[0, depth=2\)"):
        _vit(tokenlearner_layer=2)
    with pytest.raises(ValueError, match="version 'v2'; allowed: v1, v1.1"):
        _vit(tokenlearner_layer=1, tokenlearner_version="v2")


def test_token_fuser_starts_at_zero():
    fuser = TokenFuser(64, 4, rngs=nnx.Rngs(0))
    out = fuser(jnp.ones((2, 4, 64)), _normal(0, (2, 16, 64)))
    assert out.shape == (2, 16, 64)
    np.testing.assert_array_equal(out, 0.0)


def test_token_learner_in_the_vit_reduces_tokens_and_flops():
    plain_flops, plain_shape = _flops_and_shape(_vit(pool="none"), IMAGES)
    learned_flops, learned_shape = _flops_and_shape(
        _vit(pool="none", tokenlearner_layer=1, num_tokens=4), IMAGES)
    assert plain_shape == (2, 16, 64) and learned_shape == (2, 4, 64)
    assert learned_flops < 0.8 * plain_flops, (plain_flops, learned_flops)
    fused = _vit(pool="none", tokenlearner_layer=0, num_tokens=4, tokenfuser=True,
                 tokenlearner_version="v1")
    assert _shape(fused, IMAGES) == (2, 16, 64)  # the fuser keeps the sequence length


def test_video_learns_tokens_per_frame():
    model = _vit(num_frames=3, pool="none", tokenlearner_layer=1, num_tokens=4)
    clip = jnp.stack([IMAGES] * 3, axis=1)
    assert _shape(model, clip) == (2, 3 * 4, 64)
    assert _shape(_vit(num_frames=3, pool="none"), clip) == (2, 3 * 16, 64)
