"""Navigation datasets (collect/load), house maps and panorama strips, ``worldsim show-house``."""

from __future__ import annotations

import gymnasium
import imageio.v3 as iio
import numpy as np
import pytest
from matplotlib.figure import Figure

from worldsim.cli import main
from worldsim.data import check_compatible, collect, load_dataset
from worldsim.envs.navigation.scene import SPLITS, load_scene
from worldsim.eval.navigation_plots import SEMANTIC_PALETTE, panorama_strip, plot_house_map

ENV = "worldsim/IndoorNav-v0"
ENV_KWARGS = {"split": "val_unseen", "panorama_size": [16, 32]}
SHAPES = {"rgb": ((16, 32, 3), np.uint8), "depth": ((16, 32), np.float32),
          "semantic": ((16, 32), np.uint8), "neighbor_headings": ((12,), np.float32),
          "neighbor_distances": ((12,), np.float32), "position": ((3,), np.float32),
          "heading": ((1,), np.float32)}


@pytest.fixture(scope="module")
def oracle_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("nav") / "oracle"
    return load_dataset(collect(ENV, episodes=2, out=out, env_kwargs=ENV_KWARGS, progress=False))


def test_oracle_dataset_holds_panoramas_instructions_and_episode_info(oracle_dataset):
    assert len(oracle_dataset) == 2 and oracle_dataset.env_id == ENV
    assert oracle_dataset.metadata["worldsim"]["obs_mode"] is None
    assert oracle_dataset.success_rate == 1.0
    check_compatible(oracle_dataset, ENV, env_kwargs=ENV_KWARGS)
    for episode in oracle_dataset:
        steps = episode.num_steps
        for key, (shape, dtype) in SHAPES.items():
            assert episode.observations[key].shape == (steps + 1, *shape), key
            assert episode.observations[key].dtype == dtype, key
        instructions = episode.observations["instruction"]
        assert len(instructions) == steps + 1 and len(set(instructions)) == 1
        assert isinstance(instructions[0], str) and instructions[0].endswith(".")
        assert episode.actions.shape == (steps,) and episode.actions[-1] == 0  # STOP
        info = episode.metadata
        assert info["house_seed"] in SPLITS["val_unseen"]
        assert info["instructions"][0] == instructions[0] and len(info["instructions"]) == 3
        # The oracle walks the reference path, then stops at its goal.
        nodes = episode.infos["node"]
        assert nodes[:-1].tolist() == info["reference_path"] and nodes[-1] == info["goals"][0]
        assert episode.infos["action_mask"].shape == (steps + 1, 13)
        scene = load_scene(info["house_seed"])
        positions = np.array([scene.position(n) for n in nodes], np.float32)
        np.testing.assert_array_equal(episode.observations["position"], positions)


def test_recorded_panorama_is_the_env_observation(oracle_dataset):
    env = gymnasium.make(ENV, **ENV_KWARGS)
    obs, _ = env.reset(seed=oracle_dataset[0].seed)
    env.close()
    for key in ("rgb", "depth", "semantic", "position", "neighbor_headings"):
        np.testing.assert_array_equal(oracle_dataset[0].observations[key][0], obs[key])
    assert oracle_dataset[0].observations["instruction"][0] == obs["instruction"]


def test_random_policy_only_takes_valid_actions(tmp_path):
    dataset = load_dataset(collect(ENV, episodes=3, out=tmp_path / "random", policy="random",
                                   seed=5, env_kwargs=ENV_KWARGS, progress=False))
    assert len(dataset) == 3
    for episode in dataset:
        mask = episode.infos["action_mask"]
        assert all(mask[t, action] for t, action in enumerate(episode.actions))
        assert episode.terminations[-1] or episode.truncations[-1]
        assert not episode.terminations[-1] or episode.actions[-1] == 0  # only STOP terminates
        assert episode.metadata["reference_path"][0] == episode.infos["node"][0]


def test_obs_mode_is_refused_for_navigation_envs(tmp_path):
    with pytest.raises(ValueError, match="no observation modes"):
        collect(ENV, episodes=1, out=tmp_path / "x", obs_mode="rgb", env_kwargs=ENV_KWARGS,
                progress=False)
    with pytest.raises(ValueError, match="no observation modes"):
        collect(ENV, episodes=1, out=tmp_path / "x", env_kwargs={**ENV_KWARGS, "obs_mode": "state"},
                progress=False)
    assert list(tmp_path.iterdir()) == []


def test_panorama_strip_stacks_rgb_semantics_and_depth(tmp_path):
    scene = load_scene(100003)
    panoramas = [scene.panorama(node, 16, 32) for node in (0, 1)]
    image = panorama_strip(panoramas, tmp_path / "strip.png", gap=4)
    assert image.shape == (3 * 16 + 2 * 4, 2 * 32 + 4, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[:16, :32], panoramas[0]["rgb"])
    np.testing.assert_array_equal(image[20:36, 36:68], SEMANTIC_PALETTE[panoramas[1]["semantic"]])
    assert (image[16:20] == 255).all()  # the gap
    np.testing.assert_array_equal(iio.imread(tmp_path / "strip.png"), image)
    assert SEMANTIC_PALETTE.shape == (42, 3) and len({tuple(c) for c in SEMANTIC_PALETTE}) == 42


def test_house_map_draws_paths_and_writes_png(tmp_path):
    scene = load_scene(100003)
    reference = [0, *list(scene.graph.neighbors(0))[:1]]
    figure = plot_house_map(scene, path=reference, reference_path=reference)
    assert isinstance(figure, Figure)
    labels = {t.get_text() for t in figure.axes[0].texts}
    assert "hallway" in labels and "bed" in labels
    legend = {t.get_text() for t in figure.axes[0].get_legend().get_texts()}
    assert legend == {"reference path", "agent path", "start", "goal"}
    out = plot_house_map(scene, out=tmp_path / "map.png")
    assert iio.imread(out).shape[1] > 500


def test_show_house_writes_map_and_panoramas(tmp_path, capsys):
    assert main(["show-house", "--seed", "100003", "--split", "val_unseen", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    paths = [tmp_path / "house_100003_map.png", tmp_path / "house_100003_panoramas.png"]
    assert printed == [str(p) for p in paths]
    house_map = iio.imread(paths[0])
    assert house_map.shape[0] > 400 and house_map.shape[1] > 600
    assert len(np.unique(house_map.reshape(-1, house_map.shape[-1]), axis=0)) > 50
    strip = iio.imread(paths[1])
    assert strip.shape == (3 * 128 + 8, 3 * 256 + 8, 3)
    assert strip[:128].std() > 10 and len(np.unique(strip[136:264].reshape(-1, 3), axis=0)) >= 3


def test_show_house_refuses_a_seed_outside_the_split(tmp_path, capsys):
    assert main(["show-house", "--seed", "5", "--split", "val_unseen", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("worldsim: error: ") and "100000 to 100199" in err
    assert list(tmp_path.iterdir()) == []
