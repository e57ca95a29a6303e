"""Datasets: collection, on-disk round trip, loading errors, windows, normalisation."""

from __future__ import annotations

import importlib
import json

import gymnasium
import minari
import numpy as np
import pytest

import worldsim.envs  # noqa: F401
from worldsim.data import (
    DatasetError,
    Episode,
    IncompatibleDatasetError,
    NormalizationStats,
    WindowedBatches,
    check_compatible,
    collect,
    flat_observation,
    load_dataset,
    with_action_labels,
)
from worldsim.envs import make_oracle
from worldsim.envs.wrappers import OracleActionInInfo

ENV = "worldsim/Particle-v0"
# The module, not the function ``worldsim.data.collect`` that shadows it as a package attribute.
collect_module = importlib.import_module("worldsim.data.collect")


def _collect(out, env_id=ENV, **kwargs):
    kwargs = {"episodes": 3, "seed": 7, "progress": False, **kwargs}
    return collect(env_id, out=out, **kwargs)


def _direct_rollout(seed: int):
    """Plain single-env oracle loop: (observations list, actions list)."""
    env = gymnasium.make(ENV)
    oracle = make_oracle(env)
    obs, _ = env.reset(seed=seed)
    oracle.reset()
    observations, actions, done = [obs], [], False
    while not done:
        action = np.asarray(oracle.act(obs), env.action_space.dtype)
        obs, _, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        done = terminated or truncated
    env.close()
    return observations, actions


def _assert_same_episodes(a, b):
    assert len(a) == len(b)
    for ea, eb in zip(a, b):
        assert ea.seed == eb.seed
        assert list(ea.observations) == list(eb.observations)
        for key in ea.observations:
            np.testing.assert_array_equal(ea.observations[key], eb.observations[key])
        for field in ("actions", "rewards", "terminations", "truncations", "is_success"):
            np.testing.assert_array_equal(getattr(ea, field), getattr(eb, field))


@pytest.fixture(scope="module")
def oracle_dataset(tmp_path_factory):
    return load_dataset(_collect(tmp_path_factory.mktemp("d") / "particle"))


def test_round_trip_matches_direct_rollout(oracle_dataset):
    assert [ep.seed for ep in oracle_dataset] == [7, 8, 9]
    assert oracle_dataset.env_id == ENV
    for ep in oracle_dataset:
        observations, actions = _direct_rollout(ep.seed)
        assert ep.observations["pos_agent"].shape == (len(observations), 2)
        for key in ep.observations:
            np.testing.assert_array_equal(ep.observations[key], np.stack([o[key] for o in observations]))
        np.testing.assert_array_equal(ep.actions, np.stack(actions))
        assert ep.is_success.shape == (ep.num_steps + 1,)
        assert ep.terminations[-1] or ep.truncations[-1]


def test_dataset_does_not_depend_on_num_envs(tmp_path, oracle_dataset):
    _assert_same_episodes(load_dataset(_collect(tmp_path / "two", num_envs=2)), oracle_dataset)


def test_random_policy_is_deterministic_across_num_envs(tmp_path):
    one = load_dataset(_collect(tmp_path / "r1", policy="random", episodes=2))
    two = load_dataset(_collect(tmp_path / "r2", policy="random", episodes=2, num_envs=2))
    _assert_same_episodes(one, two)


def test_minari_reads_the_data_dir_and_metadata(tmp_path):
    path = _collect(tmp_path / "p", noise_std=0.01)
    dataset = minari.MinariDataset(path / "data")
    assert dataset.total_episodes == 3
    info = load_dataset(path).metadata["worldsim"]
    assert (info["env_id"], info["policy"], info["seed"], info["noise_std"]) == (ENV, "oracle", 7, 0.01)
    assert info["env_kwargs"] == {"obs_mode": "state"}
    assert info["observation_keys"] == ["pos_agent", "vel_agent", "pos_first_goal", "pos_second_goal"]


def test_noisy_demonstrations_keep_the_oracles_noise_free_labels(tmp_path):
    noisy = list(load_dataset(_collect(tmp_path / "noisy", noise_std=0.05)).episodes)
    relabelled = with_action_labels(noisy, "oracle_clean")
    for taken, clean in zip(noisy, relabelled):
        assert clean.actions.shape == taken.actions.shape
        assert np.all(taken.infos["oracle_clean_action"][:-1] == clean.actions)
        # Particle actions are set points: the clean one is exactly a goal, the taken one is not
        goals = np.stack([taken.observations["pos_first_goal"][:-1],
                          taken.observations["pos_second_goal"][:-1]], 1)
        assert np.all(np.min(np.abs(clean.actions[:, None] - goals).max(-1), 1) < 1e-6)
        assert np.mean(np.abs(taken.actions - clean.actions)) > 0.01
    assert with_action_labels(noisy, "taken") is noisy


def test_oracle_options_reach_the_oracle_and_the_metadata(tmp_path):
    path = _collect(tmp_path / "sort", env_id="worldsim/BlockSort-v0", episodes=1,
                    oracle_options={"via_home": False})
    assert load_dataset(path).metadata["worldsim"]["oracle_options"] == {"via_home": False}
    with pytest.raises(ValueError, match=r"\['speed'\].*allowed: \['orient', 'via_home', 'order'\]"):
        _collect(tmp_path / "bad", env_id="worldsim/BlockSort-v0", oracle_options={"speed": 2})
    with pytest.raises(ValueError, match="policy='oracle'"):
        _collect(tmp_path / "random", policy="random", oracle_options={"orient": True})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sort"]


def test_noise_free_labels_are_refused_for_a_dataset_without_them(tmp_path):
    plain = list(load_dataset(_collect(tmp_path / "plain", episodes=1)).episodes)
    assert "oracle_clean_action" not in plain[0].infos
    with pytest.raises(DatasetError, match="--noise-std"):
        with_action_labels(plain, "oracle_clean")
    with pytest.raises(ValueError, match="'clean'.*'taken', 'oracle_clean'"):
        with_action_labels(plain, "clean")


def test_refuses_to_overwrite_without_flag(tmp_path):
    path = _collect(tmp_path / "p", episodes=1)
    with pytest.raises(FileExistsError, match="--overwrite") as err:
        _collect(path, episodes=1)
    assert str(path) in str(err.value)
    _collect(path, episodes=2, overwrite=True)
    assert len(load_dataset(path)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]


def test_overwrite_never_deletes_a_non_dataset_folder(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a worldsim dataset"):
        _collect(precious, episodes=1, overwrite=True)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_failure_leaves_no_temporary_folder(tmp_path, monkeypatch):
    calls = []

    def failing_to_buffer(self):
        calls.append(self.index)
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return original(self)

    original = collect_module._EpisodeRecorder.to_buffer
    monkeypatch.setattr(collect_module._EpisodeRecorder, "to_buffer", failing_to_buffer)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _collect(tmp_path / "p")
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_raise_value_error(tmp_path):
    with pytest.raises(ValueError, match="Known ids"):
        collect("worldsim/Nope-v0", episodes=1, out=tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="policy"):
        _collect(tmp_path / "x", policy="expert")
    with pytest.raises(ValueError, match="episodes"):
        _collect(tmp_path / "x", episodes=0)
    assert list(tmp_path.iterdir()) == []


def test_truncated_hdf5_is_reported_by_name(tmp_path):
    path = _collect(tmp_path / "p", episodes=1)
    hdf5 = path / "data" / "main_data.hdf5"
    hdf5.write_bytes(hdf5.read_bytes()[: hdf5.stat().st_size // 2])
    with pytest.raises(DatasetError, match="main_data.hdf5") as err:
        load_dataset(path)
    assert str(hdf5) in str(err.value)


def test_corrupt_hdf5_and_metadata_and_missing_paths(tmp_path):
    path = _collect(tmp_path / "p", episodes=1)
    (path / "data" / "main_data.hdf5").write_bytes(b"not an hdf5 file at all")
    with pytest.raises(DatasetError, match="main_data.hdf5"):
        load_dataset(path)
    (path / "data" / "metadata.json").write_text("{truncated")
    with pytest.raises(DatasetError, match="metadata.json"):
        load_dataset(path)
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "missing")
    with pytest.raises(DatasetError, match="not a worldsim dataset"):
        load_dataset(tmp_path)


def test_check_compatible_lists_mismatches(oracle_dataset, tmp_path):
    check_compatible(oracle_dataset, ENV)
    with pytest.raises(IncompatibleDatasetError) as err:
        check_compatible(oracle_dataset, ENV, env_kwargs={"n_dim": 3, "hide_velocity": True})
    message = str(err.value)
    assert "'vel_agent': in the dataset, missing from the env" in message
    assert "'pos_agent': shape (2,) vs (3,)" in message
    assert "action: shape (2,) vs (3,)" in message
    env = gymnasium.make(ENV, obs_mode="state+rgb", image_size=(32, 32))
    with pytest.raises(IncompatibleDatasetError, match="'rgb': in the env, missing from the dataset"):
        check_compatible(oracle_dataset, (env.observation_space, env.action_space))
    env.close()


def test_images_round_trip_and_stay_uint8(tmp_path):
    path = _collect(tmp_path / "img", episodes=2, obs_mode="state+rgb",
                    env_kwargs={"image_size": (32, 32)}, jpeg_images=False)
    dataset = load_dataset(path)
    rgb = dataset[0].observations["rgb"]
    assert rgb.dtype == np.uint8 and rgb.shape == (dataset[0].num_steps + 1, 32, 32, 3)
    batches = WindowedBatches(dataset, window=2, batch_size=8)
    assert "rgb" not in batches.normalization.obs_mean
    batch = next(iter(batches))
    assert batch["observations"]["rgb"].dtype == np.uint8
    assert batch["observations"]["rgb"].shape == (8, 2, 32, 32, 3)
    assert flat_observation(batch["observations"]).shape == (8, 2 * 8)


def _synthetic_episode(index: int, num_steps: int) -> Episode:
    """Observation value 1000*index + t at step t; action 1000*index + t (2-D)."""
    t = np.arange(num_steps + 1, dtype=np.float32) + 1000 * index
    return Episode(observations={"x": t[:, None], "y": np.stack([t, -t], axis=1)},
                   actions=np.stack([t[:-1], t[:-1]], axis=1), rewards=np.zeros(num_steps),
                   terminations=np.eye(num_steps, dtype=bool)[-1],
                   truncations=np.zeros(num_steps, bool), is_success=np.zeros(num_steps + 1, bool),
                   seed=index, index=index)


def test_windows_never_cross_episode_boundaries():
    episodes = [_synthetic_episode(0, 4), _synthetic_episode(1, 1), _synthetic_episode(2, 3)]
    batches = WindowedBatches(episodes, window=3, batch_size=8, normalize=False)
    assert batches.num_windows == 8
    windows = batches.gather(np.arange(8))
    x = windows["observations"]["x"][..., 0]  # (8, 3)
    np.testing.assert_array_equal(x[0], [0, 0, 0])  # episode start: first obs repeated
    np.testing.assert_array_equal(x[1], [0, 0, 1])
    np.testing.assert_array_equal(x[3], [1, 2, 3])
    np.testing.assert_array_equal(x[4], [1000, 1000, 1000])
    np.testing.assert_array_equal(x[5], [2000, 2000, 2000])
    np.testing.assert_array_equal(x[7], [2000, 2001, 2002])
    assert np.all(x // 1000 == x[:, :1] // 1000)  # one episode per window
    np.testing.assert_array_equal(windows["actions"][:, 0], x[:, -1])  # action at the last step
    assert 3004 not in x  # final observations (no action) are never window members


def test_batches_are_shuffled_per_epoch_and_drop_remainder():
    batches = WindowedBatches([_synthetic_episode(i, 10) for i in range(3)], window=2,
                              batch_size=7, seed=1, normalize=False, obs_keys=["y", "x"])
    assert batches.batches_per_epoch == 4
    epoch0 = list(batches.epoch(0))
    assert len(epoch0) == 4 and all(b["actions"].shape == (7, 2) for b in epoch0)
    assert list(epoch0[0]["observations"]) == ["y", "x"]
    assert epoch0[0]["observations"]["y"].shape == (7, 2, 2)
    seen = np.concatenate([b["actions"][:, 0] for b in epoch0])
    assert len(set(seen.tolist())) == 28
    np.testing.assert_array_equal(list(batches.epoch(0))[0]["actions"], epoch0[0]["actions"])
    assert not np.array_equal(list(batches.epoch(1))[0]["actions"], epoch0[0]["actions"])
    flat = flat_observation(epoch0[0]["observations"], keys=["x", "y"])
    assert flat.shape == (7, 2 * 3)
    np.testing.assert_array_equal(flat[:, 0], epoch0[0]["observations"]["x"][:, 0, 0])


def test_normalization_stats_round_trip(tmp_path):
    episodes = [_synthetic_episode(i, 5) for i in range(3)]
    stats = NormalizationStats.from_episodes(episodes, eps=1e-3)
    assert stats.obs_mean["x"].shape == (1,) and stats.action_min.shape == (2,)
    loaded = NormalizationStats.load(stats.save(tmp_path / "normalization.json"))
    for key in stats.obs_mean:
        np.testing.assert_array_equal(loaded.obs_mean[key], stats.obs_mean[key])
        np.testing.assert_array_equal(loaded.obs_std[key], stats.obs_std[key])
    np.testing.assert_array_equal(loaded.action_max, stats.action_max)
    assert loaded.eps == 1e-3
    actions = np.stack([ep.actions for ep in episodes]).reshape(-1, 2)
    scaled = stats.normalize_actions(actions)
    assert scaled.min() == -1.0 and scaled.max() == 1.0
    np.testing.assert_allclose(stats.denormalize_actions(scaled), actions, atol=1e-3)
    assert json.loads((tmp_path / "normalization.json").read_text())["format"].startswith("worldsim")
    assert [p.name for p in tmp_path.iterdir()] == ["normalization.json"]


def test_constant_observation_std_is_floored():
    ep = _synthetic_episode(0, 4)
    ep.observations["c"] = np.ones((5, 2), np.float32)
    stats = NormalizationStats.from_episodes([ep], eps=1e-6)
    np.testing.assert_array_equal(stats.obs_std["c"], np.float32(1e-6))
    assert np.all(np.isfinite(stats.normalize_observations({"c": np.ones((3, 2))})["c"]))


def test_oracle_action_in_info_matches_the_oracle():
    wrapped = OracleActionInInfo(gymnasium.make(ENV))
    obs, info = wrapped.reset(seed=3)
    observations, actions = _direct_rollout(3)
    for expected in actions[:5]:
        assert info["oracle_action"].dtype == np.float32 and info["oracle_action"].shape == (2,)
        np.testing.assert_array_equal(info["oracle_action"], expected)
        obs, _, _, _, info = wrapped.step(info["oracle_action"])
    wrapped.close()
