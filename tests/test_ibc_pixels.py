"""The image energy model and explicit baselines on pixels: encoder parts, and a short
BlockPush-from-pixels run end to end (collect → train → load → act)."""

from __future__ import annotations

import gymnasium
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import worldsim.envs  # noqa: F401  (registers the ids)
from worldsim.agents import load
from worldsim.agents.ibc.networks import make_image_encoder, spatial_soft_argmax
from worldsim.agents.training import make_train_task
from worldsim.configs.ibc.blockpush_pixels import get_config
from worldsim.data import collect
from worldsim.train.loop import train
from worldsim.train.metrics import read_metrics

IMAGE_SIZE = (24, 32)


def test_spatial_soft_argmax_finds_each_channels_peak():
    features = np.zeros((1, 5, 9, 2), np.float32)
    features[0, 0, 8, 0] = 50.0  # top-right corner
    features[0, 2, 4, 1] = 50.0  # centre
    keypoints = np.asarray(spatial_soft_argmax(jnp.asarray(features)))
    np.testing.assert_allclose(keypoints[0], [1.0, 0.0, -1.0, 0.0], atol=1e-3)


def test_spatial_softmax_encoder_shapes_and_unknown_kind():
    encoder = make_image_encoder("spatial_softmax", 3, (8, 8, 4), rngs=nnx.Rngs(0))
    out = encoder(jnp.zeros((2, *IMAGE_SIZE, 3)))
    assert out.shape == (2, encoder.features) == (2, 8)
    assert np.all(np.abs(np.asarray(out)) <= 1.0)
    with pytest.raises(ValueError, match="spatial_softmax"):
        make_image_encoder("resnet", 3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="image size"):
        make_image_encoder("vit", 3, rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def pixel_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("pixels") / "blockpush_rgb"
    return collect("worldsim/BlockPush-v0", episodes=3, out=out, num_envs=1, seed=1000,
                   obs_mode="state+rgb", env_kwargs={"image_size": list(IMAGE_SIZE)},
                   progress=False)


@pytest.mark.parametrize("method,encoder", [("cpu_dfo", "spatial_softmax"),
                                            ("cpu_mse", "spatial_softmax"),
                                            ("cpu_dfo", "vit")])  # the shared worldsim.nn ViT
def test_pixel_policy_trains_and_acts(pixel_dataset, tmp_path, method, encoder):
    config = get_config(method)
    config.dataset = str(pixel_dataset)
    config.env_kwargs.image_size = IMAGE_SIZE
    config.model.image_encoder = encoder
    config.model.conv_channels = (8, 8, 8)
    config.model.vit_variant = "mu/8"  # 3 × 4 patches of the 24 × 32 images
    config.model.width = 32
    config.data.batch_size = 16
    config.ibc.num_negatives, config.ibc.inference_samples = 16, 64
    config.train.steps, config.train.log_every, config.train.checkpoint_every = 60, 20, 60
    train(config, tmp_path / "run", make_train_task(config), progress=False)

    rows = read_metrics(tmp_path / "run")
    key = "info_nce" if method == "cpu_dfo" else "loss"
    assert rows[-1][key] < rows[0][key], rows

    policy = load(tmp_path / "run")
    env = gymnasium.make("worldsim/BlockPush-v0", obs_mode="state+rgb", image_size=IMAGE_SIZE)
    obs, _ = env.reset(seed=0)
    policy.reset()
    for _ in range(3):
        action = policy.act(obs)
        assert action.shape == (2,) and env.action_space.contains(action)
        obs, *_ = env.step(action)
