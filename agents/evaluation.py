"""Evaluate a trained run: seeded rollouts, ``eval_info.json`` and rollout videos."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import gymnasium
import ml_collections

from worldsim.agents import load
from worldsim.agents.training import make_env
from worldsim.eval.rollout import evaluate_policy, write_eval_info
from worldsim.eval.video import render_episode, write_video


def _make_eval_env(config_dict: dict[str, Any], render: bool = False) -> gymnasium.Env:
    config = ml_collections.ConfigDict(config_dict)
    return make_env(config, render_mode="rgb_array") if render else make_env(config)


def evaluate_workdir(workdir: str | Path, episodes: int = 100, num_envs: int = 2,
                     videos: int = 3, first_seed: int | None = None,
                     progress: bool = True) -> dict[str, Any]:
    """Evaluates the latest checkpoint of ``workdir``; writes eval_info.json and videos/."""
    workdir = Path(workdir)
    policy = load(workdir)
    config_dict = policy.config.to_dict()
    seed = policy.config.eval.seed if first_seed is None else first_seed
    make = functools.partial(_make_eval_env, config_dict)
    info = evaluate_policy(policy, make, episodes, num_envs, seed, progress)
    paths = []
    for episode in range(min(videos, episodes)):
        env = _make_eval_env(config_dict, render=True)
        try:
            filmed = render_episode(env, policy, seed + episode)
        finally:
            env.close()
        outcome = "success" if filmed.success else "failure"
        name = f"eval_seed{seed + episode}_{outcome}.mp4"
        paths.append(str(write_video(filmed.frames, workdir / "videos" / name, filmed.fps)))
    info["overall"]["video_paths"] = paths
    info["env_id"] = policy.config.env_id
    info["env_kwargs"] = dict(policy.config.env_kwargs)
    info["checkpoint_step"] = int(policy.meta.get("step", -1))
    info["episode_seeds"] = f"{seed}..{seed + episodes - 1}"
    write_eval_info(info, workdir / "eval_info.json")
    return info
