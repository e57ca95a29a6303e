"""The block suite and the registry: API conformance, determinism, oracles, bad input."""

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import worldsim.envs
from worldsim.envs import ENV_IDS, check_env_id, make_oracle

BLOCK_IDS = [i for i in ENV_IDS if "Block" in i]


def _rollout_with_oracle(env, seed, steps=None, **oracle_options):
    oracle = make_oracle(env, **oracle_options)
    obs, info = env.reset(seed=seed)
    oracle.reset()
    observations = [obs]
    for _ in range(steps or 10_000):
        obs, _, terminated, truncated, info = env.step(oracle.act(obs))
        observations.append(obs)
        if terminated or truncated:
            break
    return observations, info


@pytest.mark.parametrize("env_id", [i for i in ENV_IDS if "Nav" not in i])  # nav: test_navigation_env
def test_env_checker_passes(env_id):
    env = gymnasium.make(env_id, render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


@pytest.mark.parametrize("env_id", ["worldsim/BlockPush-v0", "worldsim/BlockPushMultimodal-v0"])
def test_image_observation_modes(env_id):
    env = gymnasium.make(env_id, obs_mode="state+rgb", image_size=(90, 120))
    obs, _ = env.reset(seed=0)
    assert obs["rgb"].shape == (90, 120, 3) and obs["rgb"].dtype == np.uint8
    assert obs["rgb"].std() > 5  # a real picture, not a blank frame
    assert "block_translation" in obs
    rgb_only = gymnasium.make(env_id, obs_mode="rgb", image_size=(90, 120))
    assert list(rgb_only.observation_space.keys()) == ["rgb"]
    check_env(rgb_only.unwrapped)


@pytest.mark.parametrize("env_id", BLOCK_IDS)
def test_deterministic_under_seed(env_id):
    runs = []
    for _ in range(2):
        env = gymnasium.make(env_id)
        observations, _ = _rollout_with_oracle(env, seed=3, steps=25)
        runs.append(observations)
        env.close()
    for a, b in zip(*runs):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    first_key = next(iter(runs[0][0]))  # a block position in every block env
    other = gymnasium.make(env_id)
    assert not np.array_equal(other.reset(seed=4)[0][first_key], runs[0][0][first_key])


@pytest.mark.parametrize("env_id", ["worldsim/BlockPush-v0", "worldsim/BlockPushMultiTarget-v0",
                                    "worldsim/BlockPushMultimodal-v0"])
def test_oracle_succeeds_on_a_few_seeds(env_id):
    env = gymnasium.make(env_id)
    successes = [_rollout_with_oracle(env, seed)[1]["is_success"] for seed in range(3)]
    assert sum(successes) >= 2, successes


@pytest.mark.parametrize("env_id", ["worldsim/BlockPush-v0", "worldsim/BlockPushMultimodal-v0"])
def test_oracle_moves_in_whole_steps(env_id):
    """No creeping: every oracle step is at least ARRIVAL_RADIUS long (millimetre steps at the
    end of an approach or round an obstacle teach cloned policies to stall)."""
    from worldsim.envs.manipulation.oracles import ARRIVAL_RADIUS

    env = gymnasium.make(env_id)
    for seed in range(3):
        oracle = make_oracle(env)
        env.reset(seed=seed)
        oracle.reset()
        for _ in range(300):
            action = oracle.act()
            assert np.linalg.norm(action) >= ARRIVAL_RADIUS - 1e-6, (seed, action)
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break


def test_noisy_oracle_keeps_its_noise_free_action():
    env = gymnasium.make("worldsim/BlockPush-v0")
    oracle = make_oracle(env, noise_std=0.02)
    env.reset(seed=0)
    oracle.reset()
    gaps = []
    for _ in range(20):
        action = oracle.act()
        assert oracle.clean_action.shape == action.shape == (2,)
        assert np.linalg.norm(oracle.clean_action) <= 0.1 * np.sqrt(2)
        gaps.append(np.linalg.norm(action - oracle.clean_action))
        env.step(action)
    assert 0.01 < np.mean(gaps) < 0.05  # E|noise| = 0.02 * sqrt(pi / 2) ≈ 0.025


def test_state_observation_layout():
    dims = {"worldsim/BlockPush-v0": 10, "worldsim/BlockPushMultiTarget-v0": 13,
            "worldsim/BlockPushMultimodal-v0": 16}
    for env_id, dim in dims.items():
        space = gymnasium.make(env_id).observation_space
        assert sum(int(np.prod(s.shape)) for s in space.values()) == dim
    keys = list(gymnasium.make("worldsim/BlockPush-v0").observation_space.keys())
    assert keys == ["block_translation", "block_orientation", "effector_translation",
                    "effector_target_translation", "target_translation", "target_orientation"]


def test_nan_action_raises_clear_error():
    env = gymnasium.make("worldsim/BlockPush-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([np.nan, 0.0], np.float32))


def test_out_of_range_action_is_clipped():
    env = gymnasium.make("worldsim/BlockPush-v0")
    obs, _ = env.reset(seed=0)
    start = obs["effector_target_translation"]
    obs, *_ = env.step(np.array([5.0, 0.0], np.float32))
    np.testing.assert_allclose(obs["effector_target_translation"] - start, [0.1, 0.0], atol=1e-6)


def test_effector_follows_its_target():
    env = gymnasium.make("worldsim/BlockPush-v0")
    env.reset(seed=0)
    for _ in range(5):
        obs, *_ = env.step(np.array([0.02, 0.02], np.float32))
    error = np.linalg.norm(obs["effector_translation"] - obs["effector_target_translation"])
    assert error < 0.005


def test_goal_tolerance_is_an_argument():
    env = gymnasium.make("worldsim/BlockPush-v0", goal_tolerance=0.01)
    assert env.unwrapped.goal_tolerance == 0.01
    assert gymnasium.make("worldsim/BlockPush-v0").unwrapped.goal_tolerance == 0.02
    with pytest.raises(ValueError, match="goal_tolerance"):
        gymnasium.make("worldsim/BlockPush-v0", goal_tolerance=-1)


@pytest.mark.parametrize("kwargs, message", [({"obs_mode": "pixels"}, "obs_mode"),
                                             ({"render_mode": "depth"}, "render_mode"),
                                             ({"image_size": (4, 4)}, "image_size")])
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gymnasium.make("worldsim/BlockPush-v0", **kwargs)


def test_unknown_env_id_lists_known_ids():
    with pytest.raises(ValueError) as error:
        check_env_id("worldsim/BlockPsh-v0")
    assert "worldsim/BlockPush-v0" in str(error.value)
    assert "Did you mean" in str(error.value)


def test_success_is_reported_and_terminates():
    env = gymnasium.make("worldsim/BlockPush-v0")
    env.reset(seed=0)
    base = env.unwrapped
    target_xy = base.scene.pose_xy_yaw(base.target)[0]
    base.scene.place(base.block, target_xy, 0.0, z=0.02)
    _, reward, terminated, _, info = env.step(np.zeros(2, np.float32))
    assert info["is_success"] and terminated and reward == 1.0


def test_multimodal_oracle_without_home_trip_goes_straight_to_the_second_block():
    from worldsim.envs.manipulation.scene import EFFECTOR_START_XY
    env = gymnasium.make("worldsim/BlockPushMultimodal-v0")
    steps = {}
    for via_home in (True, False):
        observations, info = _rollout_with_oracle(env, 3, via_home=via_home)
        assert info["is_success"], via_home
        tips = np.array([obs["effector_target_translation"] for obs in observations[10:]])
        # after leaving the start pose, only the default oracle comes back to it
        assert (np.linalg.norm(tips - EFFECTOR_START_XY, axis=1) < 0.01).any() == via_home
        steps[via_home] = len(observations)
    assert steps[False] < steps[True]
    env.close()
