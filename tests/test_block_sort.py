"""Tests of the colour sorting env (worldsim/BlockSort-v0) and its oracle."""

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import worldsim.envs  # noqa: F401  (registers the worldsim/ ids)
from worldsim.envs import make_oracle
from worldsim.envs.manipulation.block_sort import HOME_XY, BlockSortEnv

ENV_ID = "worldsim/BlockSort-v0"


@pytest.mark.parametrize("kwargs", [{}, {"colours": ("red", "green", "blue"), "n_blocks_per_colour": 1}])
def test_check_env_through_make(kwargs):
    env = gymnasium.make(ENV_ID, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
        warnings.filterwarnings("ignore", message=".*different from the unwrapped.*")
        check_env(env)
    assert env.spec.max_episode_steps == 400
    env.close()


def test_observation_layout():
    env = BlockSortEnv()
    obs, info = env.reset(seed=0)
    assert list(obs) == ["block0_translation", "block0_orientation", "block1_translation",
                         "block1_orientation", "block2_translation", "block2_orientation",
                         "block3_translation", "block3_orientation", "effector_translation",
                         "effector_target_translation", "zone0_translation", "zone1_translation"]
    assert sum(v.size for v in obs.values()) == 20
    assert info == {"is_success": False, "n_sorted": 0}
    blue_zone, yellow_zone = obs["zone0_translation"], obs["zone1_translation"]
    assert abs(blue_zone[0] - 0.4) <= 0.02 and abs(blue_zone[1] - 0.25) <= 0.02
    assert abs(yellow_zone[0] - 0.4) <= 0.02 and abs(yellow_zone[1] + 0.25) <= 0.02
    env.close()


@pytest.mark.parametrize("kwargs, dims", [({"n_blocks_per_colour": 3}, 26),
                                          ({"colours": ("blue", "yellow", "red")}, 28),
                                          ({"colours": ("blue", "yellow", "red", "green")}, 36)])
def test_observation_grows(kwargs, dims):
    env = BlockSortEnv(**kwargs)
    obs, _ = env.reset(seed=1)
    assert sum(v.size for v in obs.values()) == dims
    assert env.observation_space.contains(obs)
    blocks = np.array([obs[f"block{i}_translation"] for i in range(env.n_blocks)])
    gaps = np.linalg.norm(blocks[:, None] - blocks[None], axis=-1) + np.eye(env.n_blocks)
    assert gaps.min() >= 0.075  # 0.08 m at reset, less what settling moves
    env.close()


def _rollout(seed, actions):
    env = gymnasium.make(ENV_ID)
    observations = [env.reset(seed=seed)[0]]
    observations += [env.step(action)[0] for action in actions]
    env.close()
    return observations


def test_deterministic_under_seed():
    actions = np.random.default_rng(0).uniform(-0.05, 0.05, (15, 2)).astype(np.float32)
    first, second, other = _rollout(3, actions), _rollout(3, actions), _rollout(4, actions)
    for a, b in zip(first, second):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(first[0]["block0_translation"], other[0]["block0_translation"])


@pytest.mark.parametrize("kwargs, match", [
    ({"colours": ("blue",)}, "colours"), ({"colours": ("blue", "blue")}, "colours"),
    ({"colours": ("blue", "purple")}, "purple"), ({"n_blocks_per_colour": 0}, "n_blocks_per_colour"),
    ({"n_blocks_per_colour": 5}, "at most 8"), ({"n_blocks_per_colour": 1.5}, "integer"),
    ({"goal_tolerance": -0.1}, "goal_tolerance")])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BlockSortEnv(**kwargs)


def test_reward_and_success_when_sorted():
    env = BlockSortEnv()
    env.reset(seed=5)
    _, reward, terminated, _, info = env.step(np.zeros(2, np.float32))
    assert reward == 0.0 and not terminated and info["n_sorted"] == 0
    for i in range(2):  # the two blue cubes into the blue zone
        env.scene.place(env.blocks[i], env.zone_xy[0] + [0.0, 0.025 * (2 * i - 1)], 0.0, z=0.02)
    _, reward, terminated, _, info = env.step(np.zeros(2, np.float32))
    assert reward == 0.5 and not terminated and info == {"is_success": False, "n_sorted": 2}
    for i in range(2, 4):
        env.scene.place(env.blocks[i], env.zone_xy[1] + [0.0, 0.025 * (2 * i - 5)], 0.0, z=0.02)
    _, reward, terminated, _, info = env.step(np.zeros(2, np.float32))
    assert reward == 1.0 and terminated and info == {"is_success": True, "n_sorted": 4}
    env.close()


def _oracle_episode(env, oracle, seed):
    obs, info = env.reset(seed=seed)
    oracle.reset()
    order = oracle.order
    terminated = truncated = False
    while not (terminated or truncated):
        obs, _, terminated, truncated, info = env.step(oracle.act(obs))
    return info["is_success"], order


def test_oracle_sorts_and_its_order_is_seeded():
    env = gymnasium.make(ENV_ID)
    oracle = make_oracle(env)
    orders = []
    for seed in range(3):
        success, order = _oracle_episode(env, oracle, seed)
        assert success, f"oracle failed on seed {seed}"
        orders.append(order)
    assert sorted(orders[0]) == [0, 1, 2, 3]
    env.reset(seed=1)
    oracle.reset()
    assert oracle.order == orders[1]  # same seed, same order
    draws = set()
    for seed in range(3, 13):
        env.reset(seed=seed)
        oracle.reset()
        draws.add(oracle.order)
    assert len(draws | set(orders)) >= 4  # orders differ across seeds: multimodal demonstrations
    env.close()


def test_oracle_without_home_trips_goes_straight_to_the_next_cube():
    env = gymnasium.make(ENV_ID)
    steps = {}
    for via_home in (True, False):
        oracle = make_oracle(env, via_home=via_home)
        obs, _ = env.reset(seed=4)
        oracle.reset()
        tips, terminated, truncated = [], False, False
        while not (terminated or truncated):
            obs, _, terminated, truncated, info = env.step(oracle.act(obs))
            tips.append(obs["effector_target_translation"])
        assert info["is_success"], via_home
        near_home = np.linalg.norm(np.array(tips) - HOME_XY, axis=1) < 0.01
        assert near_home.any() == via_home  # only the default oracle parks at the home point
        steps[via_home] = len(tips)
    assert steps[False] < steps[True]
    env.close()


def test_unknown_oracle_options_name_the_allowed_ones():
    env = gymnasium.make(ENV_ID)
    with pytest.raises(ValueError, match=r"\['via_hom'\].*allowed: \['orient', 'via_home', 'order'\]"):
        make_oracle(env, via_hom=False)
    with pytest.raises(ValueError, match="'closest'.*'random', 'nearest'"):
        make_oracle(env, order="closest")
    env.close()


def test_nearest_order_takes_the_cube_nearest_the_tip_each_time():
    env = gymnasium.make(ENV_ID)
    oracle = make_oracle(env, via_home=False, order="nearest")
    obs, _ = env.reset(seed=2)
    oracle.reset()
    assert oracle.order is None
    started, terminated, truncated = [], False, False
    while not (terminated or truncated):
        tip = env.unwrapped.scene.effector_target.copy()
        action = oracle.act(obs)
        if not started or oracle.current != started[-1][0]:  # a new cube: was it the nearest?
            blocks = env.unwrapped.block_xy()
            unsorted = env.unwrapped.zone_distances() >= env.unwrapped.goal_tolerance - 0.005
            reachable = [i for i in np.flatnonzero(unsorted) if oracle._plan(i, blocks)[1]]
            nearest = min(reachable or np.flatnonzero(unsorted),
                          key=lambda i: np.linalg.norm(blocks[i] - tip))
            started.append((oracle.current, int(nearest)))
        obs, _, terminated, truncated, info = env.step(action)
    assert info["is_success"]
    # the nearest of the cubes whose pre-push point is free (a covered one waits its turn)
    assert len(started) >= 4 and all(current == nearest for current, nearest in started), started
    env.close()
