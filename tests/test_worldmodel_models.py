"""The world model's networks (structure and image generators), data, metrics and training."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from worldsim.data import collect
from worldsim.envs.navigation.semantics import NUM_CLASSES
from worldsim.train.configuration import load_config
from worldsim.train.loop import train
from worldsim.worldmodel.data import (GuidanceBatches, guidance_from_frames, guidance_options,
                                      trajectories_from_dataset)
from worldsim.worldmodel.evaluation import (
    depth_errors, evaluate_world_model, iou_from_confusion, nearest_fill, psnr, sample_diversity,
    semantic_confusion, ssim)
from worldsim.worldmodel.image import ImageGenerator, PartialConv
from worldsim.worldmodel.structure import CircularConv, StructureGenerator, gaussian_kl, pull_push_fill
from worldsim.worldmodel.training import (class_weights, load_world_model, make_train_task,
                                          semantic_cross_entropy)

B, H, W = 2, 8, 16


def _guidance(seed=0, batch=B, height=H, width=W, seen=0.5):
    rng = np.random.default_rng(seed)
    mask = rng.random((batch, height, width)) < seen
    return {"rgb": (rng.integers(0, 256, (batch, height, width, 3)) * mask[..., None]).astype(np.uint8),
            "semantic": (rng.integers(1, 30, (batch, height, width)) * mask).astype(np.uint8),
            "depth": (rng.uniform(0.5, 9.0, (batch, height, width)) * mask).astype(np.float32),
            "mask": mask}


def _target(seed=1, batch=B, height=H, width=W):
    rng = np.random.default_rng(seed)
    return {"semantic": rng.integers(1, 30, (batch, height, width)).astype(np.uint8),
            "depth": rng.uniform(0.5, 9.0, (batch, height, width)).astype(np.float32)}


def _structure(circular=True, seed=0):
    return StructureGenerator(widths=(4, 8), z_dim=2, latent_hidden=4, circular=circular, rngs=nnx.Rngs(seed))


@nnx.jit(static_argnames="sample")
def _run_structure(model, guidance, target, key, sample):
    return model(guidance, target, key=key, sample=sample)


# --- structure generator ----------------------------------------------------------------------

def test_structure_generator_shapes_ranges_and_aux():
    model = _structure()
    outputs, aux = _run_structure(model, _guidance(), _target(), jax.random.key(0), True)
    assert outputs["semantic_logits"].shape == (B, H, W, NUM_CLASSES)
    assert outputs["depth"].shape == (B, H, W)
    assert float(outputs["depth"].min()) > 0 and float(outputs["depth"].max()) < 10
    assert aux["prior_mu"].shape == aux["posterior_logvar"].shape == (B, H // 2, W // 2, 2)
    assert model.latent_shape(H, W) == (H // 2, W // 2, 2)
    assert float(aux["kl"]) > 0 and np.isfinite(float(aux["kl_sum"]))
    # The prior path needs no target, and then has no KL term.
    outputs, aux = _run_structure(model, _guidance(), None, jax.random.key(0), True)
    assert outputs["depth"].shape == (B, H, W) and float(aux["kl"]) == 0.0
    assert "posterior_mu" not in aux


def test_gaussian_kl_is_zero_iff_posterior_equals_prior():
    rng = np.random.default_rng(0)
    mu, logvar = jnp.asarray(rng.normal(size=(3, 4))), jnp.asarray(rng.normal(size=(3, 4)))
    np.testing.assert_allclose(gaussian_kl(mu, logvar, mu, logvar), 0.0, atol=1e-6)
    assert float(gaussian_kl(mu + 0.5, logvar, mu, logvar).min()) > 0
    assert float(gaussian_kl(mu, logvar + 0.5, mu, logvar).min()) > 0
    # Closed form against a 1-D case: KL(N(1, 1) ‖ N(0, 1)) = 0.5.
    np.testing.assert_allclose(gaussian_kl(jnp.ones(()), jnp.zeros(()), jnp.zeros(()), jnp.zeros(())), 0.5)


def test_latent_samples_differ_in_unseen_pixels_and_the_mean_is_deterministic():
    model, guidance = _structure(), _guidance()
    unseen = ~guidance["mask"]
    first, _ = _run_structure(model, guidance, None, jax.random.key(1), True)
    second, _ = _run_structure(model, guidance, None, jax.random.key(2), True)
    assert np.abs(np.asarray(first["depth"] - second["depth"])[unseen]).max() > 1e-4
    mean1, _ = _run_structure(model, guidance, None, jax.random.key(1), False)
    mean2, _ = _run_structure(model, guidance, None, jax.random.key(2), False)
    np.testing.assert_array_equal(mean1["depth"], mean2["depth"])


def test_circular_conv_wraps_around_the_width_only():
    x = np.zeros((1, 4, W, 1), np.float32)
    x[0, 1, 0, 0] = 1.0  # a feature at column 0
    for circular, reaches in ((True, True), (False, False)):
        conv = CircularConv(1, 1, 3, rngs=nnx.Rngs(0), circular=circular, use_bias=False)
        delta = np.asarray(conv(jnp.asarray(x)) - conv(jnp.zeros_like(x)))[0, :, :, 0]
        assert (np.abs(delta[:, W - 1]).max() > 0) == reaches  # column W−1 neighbours column 0
        assert np.abs(delta[:, 2:W - 1]).max() == 0
    # Rolling the input rolls a stride-1 circular conv's output by the same columns.
    rng = np.random.default_rng(0)
    y = jnp.asarray(rng.normal(size=(1, 4, W, 2)), jnp.float32)
    conv = CircularConv(2, 3, 3, rngs=nnx.Rngs(1))
    np.testing.assert_allclose(conv(jnp.roll(y, 5, axis=2)), jnp.roll(conv(y), 5, axis=2), atol=1e-5)


def test_structure_generator_is_roll_equivariant_only_with_circular_padding():
    guidance = _guidance(seed=3)
    rolled = {k: np.roll(v, 2, axis=2) for k, v in guidance.items()}  # 2 = 2^(levels − 1)
    for circular, equivariant in ((True, True), (False, False)):
        model = _structure(circular)
        out, _ = _run_structure(model, guidance, None, jax.random.key(0), False)
        out_rolled, _ = _run_structure(model, rolled, None, jax.random.key(0), False)
        error = np.abs(np.roll(np.asarray(out["semantic_logits"]), 2, axis=2) - np.asarray(out_rolled["semantic_logits"]))
        assert (error.max() < 1e-4) == equivariant


def test_pull_push_fill_keeps_seen_pixels_and_fills_holes_from_their_surroundings():
    values = np.zeros((1, 8, 16, 2), np.float32)
    values[0, :, :8, 0], values[0, :, 8:, 1] = 1.0, 5.0  # left half: channel 0, right half: channel 1
    weight = np.zeros((1, 8, 16), np.float32)
    weight[0, :, 0:3] = weight[0, :, 13:16] = 1.0  # seen: columns 0–2 (left) and 13–15 (right)
    filled = np.asarray(pull_push_fill(values, weight))
    seen = weight[0] > 0
    np.testing.assert_array_equal(filled[0][seen], values[0][seen])
    assert filled[0, 4, 3, 0] == 1.0 and filled[0, 4, 3, 1] == 0.0  # next to the left seen block
    assert filled[0, 4, 12, 1] == 5.0 and filled[0, 4, 12, 0] == 0.0  # next to the right one
    # Nothing seen: zeros; a single seen pixel: its value everywhere.
    np.testing.assert_array_equal(pull_push_fill(values, np.zeros_like(weight)), 0.0)
    single = np.zeros_like(weight)
    single[0, 5, 11] = 1.0
    np.testing.assert_allclose(pull_push_fill(values, single), np.broadcast_to(values[0, 5, 11], values.shape))


def test_structure_generator_with_in_painted_guidance_input():
    guidance = _guidance(seed=5, seen=0.2)
    model = StructureGenerator(widths=(4, 8), z_dim=2, latent_hidden=4, inpaint_guidance=True, rngs=nnx.Rngs(0))
    assert model.encoder.stem.conv.kernel[...].shape[2] == 2 * (NUM_CLASSES + 2) - 1
    outputs, aux = _run_structure(model, guidance, _target(), jax.random.key(0), True)
    assert outputs["semantic_logits"].shape == (B, H, W, NUM_CLASSES) and float(aux["kl"]) > 0
    assert np.isfinite(np.asarray(outputs["depth"])).all()


def test_class_weights_favour_rare_classes_and_weight_the_cross_entropy():
    labels = np.array([1] * 90 + [2] * 9 + [3] * 1 + [0] * 50)
    weights = class_weights(labels, 0.5)
    assert weights[0] == 0 and weights[3] > weights[2] > weights[1]
    frequency = np.array([0, 0.9, 0.09, 0.01])
    assert abs((frequency * weights[:4]).sum() - 1.0) < 1e-5  # mean weight over pixels is 1
    assert weights[5] == 10.0  # never seen: the clip value
    np.testing.assert_array_equal(class_weights(labels, 0.0)[1:4], 1.0)
    with pytest.raises(ValueError, match="class_balance=-1"):
        class_weights(labels, -1.0)
    # A pixel of a heavily weighted class dominates the weighted mean.
    logits = jnp.zeros((1, 1, 2, NUM_CLASSES)).at[0, 0, 0, 1].set(5.0)  # pixel 0 right, pixel 1 wrong
    target = jnp.asarray([[[1, 3]]])
    plain, accuracy = semantic_cross_entropy(logits, target)
    weighted, accuracy_weighted = semantic_cross_entropy(logits, target, jnp.asarray(weights))
    assert float(weighted) > float(plain) and float(accuracy) == float(accuracy_weighted) == 0.5


# --- image generator --------------------------------------------------------------------------

def test_partial_conv_and_image_generator_ignore_rgb_under_mask_zero():
    guidance = _guidance(seed=4)
    changed = dict(guidance)
    changed["rgb"] = np.where(guidance["mask"][..., None], guidance["rgb"], 255 - guidance["rgb"]).astype(np.uint8)
    changed["rgb"][~guidance["mask"]] = 200
    assert not np.array_equal(changed["rgb"], guidance["rgb"])

    conv = PartialConv(3, 4, 3, rngs=nnx.Rngs(0))
    mask = jnp.asarray(guidance["mask"], jnp.float32)[..., None]
    out, new_mask = conv(jnp.asarray(guidance["rgb"], jnp.float32) / 255, mask)
    out2, _ = conv(jnp.asarray(changed["rgb"], jnp.float32) / 255, mask)
    np.testing.assert_array_equal(out, out2)
    assert float(jnp.abs(out).max()) > 0
    # A window with no seen pixel gives 0 and stays masked.
    empty, empty_mask = conv(jnp.ones((1, 4, 8, 3)), jnp.zeros((1, 4, 8, 1)))
    assert float(jnp.abs(empty).max()) == 0 and float(empty_mask.max()) == 0
    assert new_mask.shape == mask.shape

    image = ImageGenerator(widths=(4, 4), hidden=4, rngs=nnx.Rngs(0))
    run = nnx.jit(lambda m, s, d, g: m(s, d, g)[0])
    target = _target()
    rgb = run(image, target["semantic"], target["depth"], guidance)
    assert rgb.shape == (B, H, W, 3) and float(rgb.min()) >= 0 and float(rgb.max()) <= 1
    np.testing.assert_array_equal(rgb, run(image, target["semantic"], target["depth"], changed))
    # ... while the seen colours do matter.
    brighter = dict(guidance, rgb=np.full_like(guidance["rgb"], 255))
    assert float(jnp.abs(rgb - run(image, target["semantic"], target["depth"], brighter)).max()) > 0


# --- metrics and baselines --------------------------------------------------------------------

def test_segmentation_metrics_on_hand_cases():
    target = np.array([[1, 1, 2, 2], [3, 3, 0, 0]])
    same = iou_from_confusion(semantic_confusion(target, target))
    assert same == {"miou": 1.0, "joint_iou": 1.0, "acc": 1.0}
    prediction = np.array([[1, 2, 2, 2], [3, 3, 5, 5]])  # void targets (0) are ignored
    metrics = iou_from_confusion(semantic_confusion(prediction, target))
    # class 1: I 1 U 2; class 2: I 2 U 3; class 3: I 2 U 2 → mIoU (0.5 + 2/3 + 1) / 3.
    assert math.isclose(metrics["miou"], (0.5 + 2 / 3 + 1.0) / 3)
    assert math.isclose(metrics["joint_iou"], 5 / 7) and math.isclose(metrics["acc"], 5 / 6)


def test_depth_psnr_ssim_and_diversity_on_hand_cases():
    errors = depth_errors(np.array([3.0, 4.0, 7.0, 1.0]), np.array([2.0, 4.0, 0.0, 12.0]))  # 0 and ≥10 m: invalid
    assert math.isclose(errors["absrel"], 0.25) and math.isclose(errors["rmse"], math.sqrt(0.5))
    image = np.random.default_rng(0).random((16, 32, 3))
    assert psnr(image, image) == 100.0
    assert math.isclose(psnr(np.zeros((4, 4)), np.full((4, 4), 0.1)), 20.0)
    assert math.isclose(ssim(image, image), 1.0)
    assert ssim(image, np.clip(image + np.random.default_rng(1).normal(0, 0.2, image.shape), 0, 1)) < 0.9
    a = {"rgb": np.zeros((2, 2, 3)), "semantic": np.array([[1, 2], [3, 4]]), "depth": np.ones((2, 2))}
    b = {"rgb": np.ones((2, 2, 3)), "semantic": np.array([[1, 2], [3, 5]]), "depth": np.full((2, 2), 3.0)}
    diversity = sample_diversity([a, b], np.array([[False, False], [True, True]]))
    assert diversity == {"div_rgb_l1": 1.0, "div_semantic": 0.5, "div_depth_l1": 2.0}


def test_nearest_fill_fills_every_pixel_from_the_nearest_seen_one_across_the_seam():
    guidance = _guidance(seed=5, batch=1, seen=0.1)
    guidance = {k: v[0] for k, v in guidance.items()}
    filled = nearest_fill(guidance)
    assert filled["mask"].all() and (filled["depth"] > 0).all() and (filled["semantic"] > 0).all()
    seen = guidance["mask"]
    for key in ("rgb", "semantic", "depth"):
        np.testing.assert_array_equal(filled[key][seen], guidance[key][seen])
    # One seen pixel in the last column: its neighbour across the seam (column 0) copies it.
    single = {"rgb": np.zeros((4, W, 3), np.uint8), "semantic": np.zeros((4, W), np.uint8),
              "depth": np.zeros((4, W), np.float32), "mask": np.zeros((4, W), bool)}
    single["mask"][1, W - 1], single["semantic"][1, W - 1], single["depth"][1, W - 1] = True, 7, 2.0
    single["mask"][1, W // 2], single["semantic"][1, W // 2], single["depth"][1, W // 2] = True, 3, 5.0
    filled = nearest_fill(single)
    assert filled["semantic"][1, 0] == 7 and filled["semantic"][1, W // 2 + 1] == 3


# --- data and training ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("wm") / "nav"
    return collect("worldsim/IndoorNav-v0", episodes=2, out=out, progress=False,
                   env_kwargs={"split": "val_unseen", "panorama_size": [16, 32]})


def test_guidance_batches_are_deterministic_and_reproject_the_context(tiny_dataset):
    trajectories = trajectories_from_dataset(tiny_dataset)
    batches = GuidanceBatches(trajectories, 3, context_frames=2, max_gap=2, seed=0)
    first, again = batches.batch_at(4), batches.batch_at(4)
    for key, value in first.items():
        np.testing.assert_array_equal(value, again[key])
    assert first["guidance_rgb"].shape == (3, 16, 32, 3) and first["guidance_mask"].dtype == bool
    assert first["target_depth"].dtype == np.float32
    assert not all(np.array_equal(first[k], batches.batch_at(5)[k]) for k in first)
    # The memory seen from the context frame's own position gives that frame back.
    frame = trajectories[0].frame(0)
    guidance = guidance_from_frames([frame], frame["position"], voxel_size=None)
    valid = (frame["depth"] > 0) & (frame["depth"] < 10)
    assert (guidance["semantic"][valid] == frame["semantic"][valid]).mean() > 0.95


def test_small_config_trains_and_reloads(tiny_dataset, tmp_path):
    config = load_config("configs/worldmodel/cpu.py:small", [f"--config.dataset={tiny_dataset}",
                                                             "--config.guidance.occlusion_window=3",
                                                             "--config.model.inpaint_guidance=True",
                                                             "--config.loss.class_balance=0.5"])
    task = make_train_task(config)
    assert task.meta["panorama_size"] == [16, 32]
    assert len(task.meta["semantic_class_weights"]) == NUM_CLASSES
    train(config, tmp_path / "run", task, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == config.train.steps
    for row in rows:
        assert all(np.isfinite(v) for v in row.values())
    model, meta, saved = load_world_model(tmp_path / "run")
    assert meta["agent"] == "worldmodel" and model.discriminator is None and model.structure.inpaint_guidance
    # The guidance settings travel with the run; configs from before they existed read as off.
    assert guidance_options(saved) == {"occlusion_window": 3, "occlusion_tolerance": 0.1}
    del saved.guidance
    assert guidance_options(saved)["occlusion_window"] == 0
    result = evaluate_world_model(tmp_path / "run", episodes=1, steps=1, out_dir=tmp_path / "eval",
                                  samples=1, strips=0, videos=0, progress=False, occlusion_tolerance=0.3)
    assert result["guidance"] == {"occlusion_window": 3, "occlusion_tolerance": 0.3}


def test_interrupted_world_model_training_resumes_to_the_same_parameters(tiny_dataset, tmp_path):
    def config(steps):
        return load_config("configs/worldmodel/cpu.py:small", [
            f"--config.dataset={tiny_dataset}", f"--config.train.steps={steps}",
            "--config.train.checkpoint_every=2", "--config.model.inpaint_guidance=True"])

    def params(model):
        return jax.tree.map(np.asarray, nnx.state(model, nnx.Param).to_pure_dict())

    straight = train(config(4), tmp_path / "straight", make_train_task(config(4)), progress=False)
    half = params(train(config(2), tmp_path / "resumed", make_train_task(config(2)), progress=False))
    resumed = train(config(4), tmp_path / "resumed", make_train_task(config(4)), progress=False)
    jax.tree.map(np.testing.assert_array_equal, params(resumed), params(straight))
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(half), jax.tree.leaves(params(resumed))))
    reloaded, _, _ = load_world_model(tmp_path / "resumed")
    jax.tree.map(np.testing.assert_array_equal, params(reloaded), params(straight))


@pytest.mark.slow
def test_gan_training_and_evaluation_write_the_table_and_pictures(tiny_dataset, tmp_path):
    config = load_config("configs/worldmodel/cpu.py:small",
                         [f"--config.dataset={tiny_dataset}", "--config.model.gan=True"])
    train(config, tmp_path / "run", make_train_task(config), progress=False)
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(row["gan_d"]) and np.isfinite(row["gan_g"])
    result = evaluate_world_model(tmp_path / "run", episodes=1, split="val_unseen", steps=2,
                                  out_dir=tmp_path / "eval", samples=2, progress=False)
    assert [row["step"] for row in result["table"]] == [1, 2]
    for row in result["table"]:
        assert row["nearest"]["acc"] >= 0 and 0 <= row["guidance"]["miou"] <= 1
        assert np.isfinite(row["model"]["div_rgb_l1"])
    for name in ("worldmodel_eval.json", "strip_0.png", "dream_0.gif"):
        assert (tmp_path / "eval" / name).is_file()


def test_world_model_observation_source_predicts_unvisited_viewpoints(tmp_path):
    from worldsim.agents.nav.scorer import SCORER_PANORAMA
    from worldsim.agents.nav.world_model_source import WorldModelSource
    from worldsim.envs.navigation.env import IndoorNavEnv

    with pytest.raises(ValueError, match="latent='median' is not one of"):
        WorldModelSource(tmp_path / "none", latent="median")
    config = load_config("configs/worldmodel/cpu.py:small", [
        "--config.dataset=", "--config.data.panorama_size=(32, 64)", "--config.train.steps=1"])
    train(config, tmp_path / "run", make_train_task(config), progress=False)
    env = IndoorNavEnv(split="val_unseen", panorama_size=(16, 32))
    env.reset(seed=0)
    unvisited = [n for n in sorted(env.scene.graph.nodes) if n not in env.path][:3]
    views = {}
    for latent in ("sample", "mean"):
        source = WorldModelSource(tmp_path / "run", latent=latent)
        semantic, depth = source.panoramas(env, [env.path[0], *unvisited])
        assert semantic.shape == depth.shape == (4, *SCORER_PANORAMA) and semantic.dtype == np.uint8
        assert np.isfinite(depth).all() and depth[1:].min() > 0  # predictions: depth everywhere
        real = env.scene.panorama(env.path[0], *SCORER_PANORAMA)  # the visited viewpoint: real
        np.testing.assert_array_equal(semantic[0], real["semantic"])
        views[latent] = depth[1:]
    # The mean does not depend on the episode's latent key; a sample does.
    again = WorldModelSource(tmp_path / "run", latent="mean", seed=7).panoramas(env, unvisited)[1]
    np.testing.assert_array_equal(again, views["mean"])
    assert not np.array_equal(views["sample"], views["mean"])
