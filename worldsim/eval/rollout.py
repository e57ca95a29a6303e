"""Policy evaluation in the LeRobot convention: seeded episodes, success rate, rewards, videos.

    >>> info = evaluate_policy(policy, make_env, episodes=100, num_envs=2)
    >>> info["overall"]["pc_success"]

``policy`` needs ``reset(mask)`` (start fresh histories for the sub-envs in ``mask``) and
``act_batch(obs) -> (B, A)``; ``make_env`` is a picklable zero-argument env factory.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import gymnasium
import numpy as np
from tqdm.auto import tqdm

from worldsim.envs.episodes import make_vector_env, run_seeded_episodes


class _EpisodeTally:
    """Per-episode sums, maxima and success (any step's ``info["is_success"]``)."""

    def __init__(self, episodes: int, progress: bool) -> None:
        self.rows: dict[int, dict[str, Any]] = {}
        self.bar = tqdm(total=episodes, desc="eval", unit="ep", disable=not progress)

    def on_reset(self, episode, seed, obs, info):
        self.rows[episode] = {"episode_ix": episode, "seed": seed, "sum_reward": 0.0,
                              "max_reward": -np.inf, "success": bool(info.get("is_success", False)),
                              "steps": 0}

    def on_step(self, episode, action, obs, reward, terminated, truncated, info):
        row = self.rows[episode]
        row["sum_reward"] += reward
        row["max_reward"] = max(row["max_reward"], reward)
        row["success"] |= bool(info.get("is_success", False))
        row["steps"] += 1

    def on_end(self, episode):
        self.bar.update(1)
        done = [r for r in self.rows.values() if r["steps"] and r["episode_ix"] <= episode]
        self.bar.set_postfix(running_success_rate=f"{np.mean([r['success'] for r in done]):.0%}")


def evaluate_policy(policy, make_env: Callable[[], gymnasium.Env], episodes: int,
                    num_envs: int = 1, first_seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Rolls ``policy`` out for ``episodes`` seeded episodes; returns the eval-info dict."""
    if episodes < 1 or num_envs < 1:
        raise ValueError(f"episodes={episodes} and num_envs={num_envs} must be ≥ 1")
    started_at = time.perf_counter()
    envs = make_vector_env(make_env, num_envs)
    tally = _EpisodeTally(episodes, progress)

    def choose_actions(obs, infos, episode_of, started):
        if started.any():
            policy.reset(started)
        return policy.act_batch(obs)

    try:
        run_seeded_episodes(envs, episodes, first_seed, choose_actions, tally)
    finally:
        tally.bar.close()
        envs.close()
    rows = [tally.rows[i] for i in sorted(tally.rows)]
    seconds = time.perf_counter() - started_at
    return {"overall": aggregate(rows, seconds), "per_episode": rows}


def aggregate(rows: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """LeRobot aggregates: pc_success (percent), avg_sum_reward, avg_max_reward, ..."""
    return {"pc_success": 100.0 * float(np.mean([r["success"] for r in rows])),
            "avg_sum_reward": float(np.mean([r["sum_reward"] for r in rows])),
            "avg_max_reward": float(np.mean([r["max_reward"] for r in rows])),
            "avg_episode_length": float(np.mean([r["steps"] for r in rows])),
            "n_episodes": len(rows), "eval_s": seconds, "eval_ep_s": seconds / len(rows)}


def write_eval_info(info: dict[str, Any], path: str | Path) -> Path:
    """Writes ``eval_info.json`` via a temporary name and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, path)
    return path
