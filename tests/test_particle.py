"""Tests of the N-D particle env (worldsim/Particle-v0) and its oracle."""

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import worldsim.envs  # noqa: F401  (registers the worldsim/ ids)
from worldsim.envs.particle import ParticleEnv, ParticleOracle

ENV_ID = "worldsim/Particle-v0"
STATE_KEYS = ["pos_agent", "vel_agent", "pos_first_goal", "pos_second_goal"]


@pytest.mark.parametrize("n_dim", [1, 2, 5])
def test_check_env_through_make(n_dim):
    env = gymnasium.make(ENV_ID, n_dim=n_dim)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
        warnings.filterwarnings("ignore", message=".*different from the unwrapped.*")
        check_env(env)
    assert env.spec.max_episode_steps == 50


def test_observation_layout():
    obs, _ = ParticleEnv(n_dim=3).reset(seed=0)
    assert list(obs) == STATE_KEYS
    assert all(v.shape == (3,) and v.dtype == np.float32 for v in obs.values())
    hidden, _ = ParticleEnv(n_dim=3, hide_velocity=True).reset(seed=0)
    assert list(hidden) == [k for k in STATE_KEYS if k != "vel_agent"]


def _rollout(env, actions):
    observations = [env.reset(seed=7)[0]]
    observations += [env.step(action)[0] for action in actions]
    return observations


def test_deterministic_under_seed():
    actions = np.random.default_rng(0).random((20, 4), dtype=np.float32)
    first = _rollout(gymnasium.make(ENV_ID, n_dim=4), actions)
    second = _rollout(gymnasium.make(ENV_ID, n_dim=4), actions)
    for a, b in zip(first, second):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_action_raises(bad):
    env = ParticleEnv(n_dim=2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([0.5, bad], np.float32))


def test_out_of_range_action_is_clipped():
    env = ParticleEnv(n_dim=2)
    env.reset(seed=0)
    for action in [(5.0, -5.0)] * 30 + [(-3.0, 4.0)] * 30:
        obs, *_ = env.step(np.array(action, np.float32))
        assert env.observation_space.contains(obs)
        assert np.all((obs["pos_agent"] >= 0) & (obs["pos_agent"] <= 1))
    np.testing.assert_allclose(obs["pos_agent"], [0.0, 1.0], atol=1e-3)


def test_success_rewards_once_and_terminates():
    env = ParticleEnv(n_dim=2)
    env.reset(seed=0)
    env.pos, env.first_goal, env.second_goal = (np.array([0.2, 0.2]), np.array([0.2, 0.2]),
                                                np.array([0.8, 0.8]))
    env._first_min = 0.0
    rewards = []
    for _ in range(50):
        _, reward, terminated, _, info = env.step(env.second_goal.astype(np.float32))
        rewards.append(reward)
        if terminated:
            break
    assert terminated and info["is_success"] and sum(rewards) == 1.0 and rewards[-1] == 1.0


def test_goal_two_before_goal_one_is_not_success():
    env = ParticleEnv(n_dim=2)
    env.reset(seed=0)
    env.pos, env.first_goal, env.second_goal = (np.array([0.8, 0.8]), np.array([0.2, 0.2]),
                                                np.array([0.8, 0.8]))
    env._first_min = 1.0
    _, reward, terminated, _, info = env.step(np.float32([0.8, 0.8]))
    assert (reward, terminated, info["is_success"]) == (0.0, False, False)
    assert info["second_goal_distance_min"] == np.inf


def _oracle_success_rate(n_dim, seeds):
    env = gymnasium.make(ENV_ID, n_dim=n_dim)
    oracle = ParticleOracle(env.unwrapped)
    successes = 0
    for seed in range(seeds):
        obs, _ = env.reset(seed=seed)
        oracle.reset()
        terminated = truncated = False
        while not (terminated or truncated):
            obs, _, terminated, truncated, info = env.step(oracle.act(obs))
        successes += info["is_success"]
    return successes / seeds


@pytest.mark.parametrize("n_dim", [2, 8])
def test_oracle_succeeds(n_dim):
    assert _oracle_success_rate(n_dim, seeds=20) >= 0.9


def test_rgb_observation_and_render():
    env = ParticleEnv(n_dim=2, obs_mode="rgb", render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    assert list(obs) == ["rgb"]
    assert obs["rgb"].shape == (180, 240, 3) and obs["rgb"].dtype == np.uint8
    np.testing.assert_array_equal(obs["rgb"], env.render())


def test_bad_obs_mode_raises():
    with pytest.raises(ValueError, match="state\\+rgb") as error:
        ParticleEnv(obs_mode="pixels")
    assert "'pixels'" in str(error.value)


@pytest.mark.parametrize("kwargs", [{"n_dim": 0}, {"goal_distance": -1.0},
                                    {"render_mode": "human"}])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError, match=repr(next(iter(kwargs.values())))):
        ParticleEnv(**kwargs)
