"""Tests of the slide-then-insert task (worldsim/BlockInsert-v0) and its oracle."""

import math
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import worldsim.envs  # noqa: F401  (registers the worldsim/ ids)
from worldsim.envs.manipulation.block_insert import OPENING_Y, SLOT_WIDTH, BlockInsertEnv
from worldsim.envs.registry import make_oracle

ENV_ID = "worldsim/BlockInsert-v0"
STATE_KEYS = ["block_translation", "block_orientation", "effector_translation",
              "effector_target_translation", "target_translation", "target_orientation"]


def test_check_env_through_make():
    env = gymnasium.make(ENV_ID)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
        warnings.filterwarnings("ignore", message=".*different from the unwrapped.*")
        check_env(env)
    env.close()


def test_observation_is_the_10d_state_with_the_seat_as_target():
    env = BlockInsertEnv()
    obs, info = env.reset(seed=0)
    assert list(obs) == STATE_KEYS
    assert sum(v.size for v in obs.values()) == 10
    seat, yaw = env.scene.pose_xy_yaw(env.target)
    np.testing.assert_allclose(obs["target_translation"], seat, atol=1e-6)
    assert math.cos(obs["target_orientation"][0] - math.pi) > math.cos(math.pi / 6) - 1e-6
    assert not info["is_success"] and info["goal_distance"] > 0.05
    env.close()


def _rollout(env, seed):
    observations = [env.reset(seed=seed)[0]]
    for action in [(0.02, 0.03), (0.0, 0.05), (-0.03, 0.01)]:
        observations.append(env.step(np.array(action, np.float32))[0])
    return observations


def test_deterministic_under_seed():
    first, second = gymnasium.make(ENV_ID), gymnasium.make(ENV_ID)
    a, b, c = _rollout(first, 5), _rollout(second, 5), _rollout(first, 5)
    for x, y, z in zip(a, b, c):
        for key in STATE_KEYS:
            np.testing.assert_array_equal(x[key], y[key])
            np.testing.assert_array_equal(x[key], z[key])
    other = first.reset(seed=6)[0]
    assert not np.allclose(other["target_translation"], a[0]["target_translation"])
    first.close(), second.close()


def _teleport_and_step(env, local_xy, z=0.02):
    """Puts the block at fixture-frame ``local_xy`` (m), square to the slot, then steps once."""
    seat, yaw = env.scene.pose_xy_yaw(env.target)
    c, s = math.cos(yaw), math.sin(yaw)
    xy = seat + np.array([c * local_xy[0] - s * local_xy[1], s * local_xy[0] + c * local_xy[1]])
    env.scene.place(env.block, xy, yaw, z=z)
    _, reward, terminated, _, info = env.step(np.zeros(2, np.float32))
    return reward, terminated, info


def test_block_at_the_seated_point_succeeds():
    env = BlockInsertEnv()
    env.reset(seed=1)
    reward, terminated, info = _teleport_and_step(env, (0.0, 0.0))
    assert info["is_success"] and terminated and reward == 1.0
    assert info["goal_distance"] < 0.005
    env.close()


@pytest.mark.parametrize("local_xy, z, why", [
    ((0.0, OPENING_Y + 0.015), 0.02, "in front of the opening"),
    ((SLOT_WIDTH / 2 + 0.04, 0.0), 0.02, "beside a side wall"),
    ((0.0, -0.03), 0.06, "on top of the back wall"),
])
def test_block_near_but_not_inside_fails(local_xy, z, why):
    env = BlockInsertEnv(goal_tolerance=0.08)  # loose: only the inside test can reject
    env.reset(seed=2)
    reward, terminated, info = _teleport_and_step(env, local_xy, z)
    assert info["goal_distance"] < 0.08, why
    assert not info["is_success"] and not terminated and reward < 1.0, why
    env.close()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_oracle_inserts_the_block(seed):
    env = gymnasium.make(ENV_ID)
    oracle = make_oracle(env)
    obs, info = env.reset(seed=seed)
    oracle.reset()
    for _ in range(env.spec.max_episode_steps):
        obs, _, terminated, truncated, info = env.step(oracle.act(obs))
        if terminated or truncated:
            break
    assert info["is_success"], f"seed {seed}: {info['goal_distance']:.3f} m from the seat"
    env.close()


@pytest.mark.parametrize("tolerance", [0.0, -0.01, float("nan")])
def test_bad_goal_tolerance_raises(tolerance):
    with pytest.raises(ValueError, match="goal_tolerance"):
        BlockInsertEnv(goal_tolerance=tolerance)
