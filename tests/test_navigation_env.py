"""IndoorNav / ObjectNav / PointNav environments, episodes, instructions and splits."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import worldsim.envs  # noqa: F401  (registers the ids)
from worldsim.envs import make_oracle
from worldsim.envs.navigation.env import MAX_NEIGHBORS, STOP, IndoorNavEnv
from worldsim.envs.navigation.scene import SPLITS, load_scene, pair_in_split

NAV_IDS = ["worldsim/IndoorNav-v0", "worldsim/ObjectNav-v0", "worldsim/PointNav-v0"]


@pytest.mark.parametrize("env_id", NAV_IDS)
def test_passes_check_env(env_id):
    env = gym.make(env_id, invalid_action="stay", house_seed=3, panorama_size=(32, 64),
                   render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)


@pytest.mark.parametrize("env_id", NAV_IDS)
def test_deterministic_under_seed(env_id):
    env = gym.make(env_id, panorama_size=(32, 64))
    runs = []
    for _ in range(2):
        obs, info = env.reset(seed=7)
        trace = [obs["rgb"].copy(), obs["instruction"], info["reference_path"]]
        for _ in range(3):
            valid = np.flatnonzero(info["action_mask"][1:]) + 1
            obs, _, terminated, truncated, info = env.step(int(valid[-1]))
            trace += [obs["depth"].copy(), info["node"]]
            if terminated or truncated:
                break
        runs.append(trace)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("env_id", NAV_IDS)
def test_oracle_succeeds_and_metrics_arrive_at_the_end(env_id):
    env = gym.make(env_id, split="val_unseen", panorama_size=(16, 32))
    oracle = make_oracle(env)
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        oracle.reset()
        done, steps = False, 0
        while not done:
            assert "metrics" not in info
            obs, reward, terminated, truncated, info = env.step(oracle.act(obs))
            done, steps = terminated or truncated, steps + 1
        assert terminated and not truncated
        metrics = info["metrics"]
        assert metrics["sr"] == 1.0 and metrics["spl"] == pytest.approx(1.0)
        assert metrics["ne"] == 0.0 and metrics["ndtw"] == pytest.approx(1.0)
        assert steps == len(info["reference_path"])


def test_stopping_at_the_start_fails_and_step_limit_truncates():
    env = IndoorNavEnv(split="val_unseen", panorama_size=(16, 32), max_steps=2)
    env.reset(seed=1)
    _, reward, terminated, _, info = env.step(STOP)
    assert terminated and info["metrics"]["sr"] == 0.0 and reward < 0
    env.reset(seed=1)
    for _ in range(2):
        _, _, terminated, truncated, info = env.step(1)
    assert truncated and not terminated and "metrics" in info


def test_observation_contents():
    env = IndoorNavEnv(goal_type="point", split="val_unseen", panorama_size=(32, 64))
    obs, info = env.reset(seed=0)
    assert obs["rgb"].shape == (32, 64, 3) and obs["semantic"].dtype == np.uint8
    count = int(info["action_mask"].sum()) - 1
    assert count == len(env.neighbors()) >= 1 and info["action_mask"][STOP]
    assert np.all(obs["neighbor_distances"][:count] > 0) and np.all(obs["neighbor_distances"][count:] == 0)
    goal = env.scene.position(env.episode.goals[0])
    assert obs["goal_vector"][0] == pytest.approx(np.linalg.norm(goal[:2] - obs["position"][:2]), rel=1e-5)
    assert 0.0 < obs["depth"].min() and obs["depth"].max() < 30.0


def test_instruction_names_the_rooms_of_the_path():
    env = IndoorNavEnv(split="val_unseen", panorama_size=(16, 32))
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        assert len(set(info["instructions"])) == 3
        rooms = [env.scene.room_kind(n) for n in info["reference_path"]]
        last_room = [r for r in rooms if r != "doorway"][-1]
        for text in info["instructions"]:
            assert text.endswith(".") and last_room in text.lower() or "stop" in text.lower()
        assert any(last_room in text for text in info["instructions"])


def test_object_goal_stops_near_the_object():
    env = IndoorNavEnv(goal_type="object", split="val_unseen", panorama_size=(16, 32))
    obs, info = env.reset(seed=2)
    target = env.episode.target
    assert target in obs["instruction"]
    rooms = {item.room for item in env.scene.house.furniture if item.name == target}
    assert all(env.scene.graph.nodes[g]["room"] in rooms for g in info["goals"])


def test_splits_never_overlap():
    train, unseen = set(SPLITS["train"]), set(SPLITS["val_unseen"])
    assert not train & unseen and not unseen & set(SPLITS["test"])
    pairs = [(h, s, g) for h in range(3) for s in range(20) for g in range(20) if s != g]
    train_pairs = {p for p in pairs if pair_in_split("train", *p)}
    seen_pairs = {p for p in pairs if pair_in_split("val_seen", *p)}
    assert train_pairs.isdisjoint(seen_pairs) and train_pairs | seen_pairs == set(pairs)
    assert 0.05 < len(seen_pairs) / len(pairs) < 0.2


def test_bad_input_errors_name_what_is_allowed():
    with pytest.raises(ValueError, match="Known splits: train, val_seen, val_unseen, test"):
        IndoorNavEnv(split="validation")
    with pytest.raises(ValueError, match="its houses are seeds 100000 to 100199"):
        IndoorNavEnv(split="val_unseen", house_seed=5)
    env = IndoorNavEnv(split="val_unseen", panorama_size=(16, 32))
    with pytest.raises(ValueError, match="its houses are seeds"):
        env.reset(seed=0, options={"house_seed": 3})
    with pytest.raises(ValueError, match="Known goal types"):
        IndoorNavEnv(goal_type="room")
    env.reset(seed=0)
    count = len(env.neighbors())
    with pytest.raises(ValueError, match=r"valid actions are \[0, 1"):
        env.step(count + 1)
    with pytest.raises(ValueError, match="not allowed"):
        env.step(MAX_NEIGHBORS + 5)
    with pytest.raises(ValueError, match="integer"):
        env.step(1.5)


def test_scene_cache_returns_the_same_scene():
    assert load_scene(100_001) is load_scene(100_001)
