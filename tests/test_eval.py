"""Seeded evaluation in the LeRobot convention, on Particle-v0 with hand-written policies."""

import functools

import gymnasium
import numpy as np
import pytest

import worldsim.envs  # noqa: F401
from worldsim.eval.rollout import aggregate, evaluate_policy, write_eval_info


class GoalSeeker:
    """Particle policy from observations alone: head for goal 1, then goal 2."""

    def __init__(self):
        self.reached_first = None

    def reset(self, mask=None):
        if self.reached_first is not None and mask is not None:
            self.reached_first[np.asarray(mask)] = False
        else:
            self.reached_first = None

    def act_batch(self, obs):
        agent, first, second = obs["pos_agent"], obs["pos_first_goal"], obs["pos_second_goal"]
        if self.reached_first is None:
            self.reached_first = np.zeros(len(agent), bool)
        self.reached_first |= np.linalg.norm(agent - first, axis=1) < 0.01
        return np.where(self.reached_first[:, None], second, first).astype(np.float32)


class Frozen:
    """Commands the agent's own position: never reaches a goal (unless it starts there)."""

    def reset(self, mask=None):
        pass

    def act_batch(self, obs):
        return obs["pos_agent"].astype(np.float32)


make_particle = functools.partial(gymnasium.make, "worldsim/Particle-v0")


@pytest.mark.parametrize("num_envs", [1, 2])
def test_goal_seeker_succeeds_and_rows_follow_seeds(num_envs):
    info = evaluate_policy(GoalSeeker(), make_particle, episodes=6, num_envs=num_envs,
                           first_seed=10, progress=False)
    overall, rows = info["overall"], info["per_episode"]
    assert overall["pc_success"] == 100.0 and overall["n_episodes"] == 6
    assert [r["seed"] for r in rows] == list(range(10, 16))
    assert overall["avg_max_reward"] == 1.0


def test_results_do_not_depend_on_num_envs():
    one = evaluate_policy(GoalSeeker(), make_particle, 5, 1, progress=False)["per_episode"]
    two = evaluate_policy(GoalSeeker(), make_particle, 5, 2, progress=False)["per_episode"]
    assert [(r["seed"], r["steps"], r["success"]) for r in one] == \
           [(r["seed"], r["steps"], r["success"]) for r in two]


def test_frozen_policy_fails():
    info = evaluate_policy(Frozen(), make_particle, 4, 1, progress=False)
    assert info["overall"]["pc_success"] == 0.0
    assert all(r["steps"] == 50 for r in info["per_episode"])  # truncated at the step limit


def test_aggregate_and_atomic_write(tmp_path):
    rows = [{"success": True, "sum_reward": 1.0, "max_reward": 1.0, "steps": 3},
            {"success": False, "sum_reward": 0.5, "max_reward": 0.25, "steps": 5}]
    overall = aggregate(rows, seconds=2.0)
    assert overall["pc_success"] == 50.0 and overall["avg_max_reward"] == 0.625
    assert overall["avg_sum_reward"] == 0.75 and overall["eval_ep_s"] == 1.0
    path = write_eval_info({"overall": overall}, tmp_path / "eval_info.json")
    assert path.exists() and not list(tmp_path.glob(".*tmp"))


def test_bad_arguments():
    with pytest.raises(ValueError, match="episodes=0"):
        evaluate_policy(Frozen(), make_particle, 0, 1)


class SingleEnv:
    """``reset()``/``act(obs)`` view of a batched policy."""

    def __init__(self, batched):
        self.batched = batched

    def reset(self):
        self.batched.reset()

    def act(self, obs):
        return self.batched.act_batch({k: v[None] for k, v in obs.items()})[0]


def test_render_episode_and_write_video(tmp_path):
    from worldsim.eval.video import render_episode, write_video

    env = gymnasium.make("worldsim/Particle-v0", render_mode="rgb_array")
    episode = render_episode(env, SingleEnv(GoalSeeker()), seed=3)
    env.close()
    assert episode.success and len(episode.frames) > 2
    assert episode.frames[0].shape == (180, 240, 3)
    path = write_video(episode.frames, tmp_path / "particle.mp4", episode.fps)
    assert path.stat().st_size > 1000 and not list(tmp_path.glob(".*"))
    with pytest.raises(ValueError, match="unsupported video"):
        write_video(episode.frames, tmp_path / "particle.avi")
