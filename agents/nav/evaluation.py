"""``worldsim nav-eval``: roll a navigator out on seeded episodes of a split and measure it.

    summary = evaluate_navigation("ground_truth", split="val_unseen", episodes=200,
                                  scorer_workdir="runs/nav_scorer", out="results.json")

Episode ``i`` is reset with seed ``seed + i``. The JSON written to ``out`` holds the summary
(``sr, spl, ne, osr, tl, ndtw, sdtw, cls`` as means over episodes, rates as fractions, the
success threshold, the planner, split and timing) and one row per episode.
"""

from __future__ import annotations

import os
import time
from typing import Any

from tqdm.auto import tqdm

from worldsim.agents.nav.baselines import OracleNavigator, RandomWalker
from worldsim.agents.nav.planner import SOURCES, LookAheadPlanner, make_source
from worldsim.envs.navigation.env import IndoorNavEnv
from worldsim.eval.navigation_metrics import aggregate_metrics
from worldsim.eval.rollout import write_eval_info

PLANNERS = ("oracle", "random") + SOURCES
EVAL_PANORAMA = (16, 32)  # the env's own observation is unused by these navigators


def make_navigator(planner: str, scorer_workdir: str | os.PathLike | None = None, horizon: int = 3,
                   world_model_workdir: str | os.PathLike | None = None, world_model_latent: str = "sample"):
    """The navigator called ``planner`` (one of ``PLANNERS``)."""
    if planner not in PLANNERS:
        raise ValueError(f"Unknown planner {planner!r}. Known planners: {', '.join(PLANNERS)}.")
    if planner == "oracle":
        return OracleNavigator()
    if planner == "random":
        return RandomWalker()
    source = make_source(planner, world_model_workdir, world_model_latent)
    if scorer_workdir is None:
        raise ValueError(f"planner {planner!r} needs a trained scorer: pass --scorer WORKDIR "
                         "(train one with worldsim train --config configs/nav/scorer.py).")
    from worldsim.agents.nav.training import load_scorer
    scorer, vocabulary, _ = load_scorer(scorer_workdir)
    return LookAheadPlanner(scorer, vocabulary, source, horizon=horizon)


def run_episode(env: IndoorNavEnv, navigator, seed: int) -> dict[str, Any]:
    """One episode; returns its row (metrics, path, instruction, seeds)."""
    obs, info = env.reset(seed=seed)
    navigator.reset(env)
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(navigator.act(env, obs))
        done = terminated or truncated
    return {"episode_seed": seed, "house_seed": info["house_seed"], "instruction": obs["instruction"],
            "path": [int(n) for n in env.path], "reference_path": [int(n) for n in info["reference_path"]],
            "stopped": bool(terminated), **info["metrics"]}


def evaluate_navigation(planner: str, split: str = "val_unseen", episodes: int = 200, seed: int = 0,
                        scorer_workdir=None, horizon: int = 3, goal_type: str = "instruction",
                        out: str | os.PathLike | None = None, progress: bool = True,
                        world_model_workdir=None, world_model_latent: str = "sample") -> dict[str, Any]:
    """Runs ``planner`` on ``episodes`` episodes and returns (and writes to ``out``) the results."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}.")
    env = IndoorNavEnv(goal_type=goal_type, split=split, panorama_size=EVAL_PANORAMA)
    navigator = make_navigator(planner, scorer_workdir, horizon, world_model_workdir, world_model_latent)
    started = time.perf_counter()
    rows = [run_episode(env, navigator, seed + i)
            for i in tqdm(range(episodes), desc=f"nav-eval {planner}", disable=not progress)]
    summary = aggregate_metrics([{k: r[k] for k in ("sr", "spl", "ne", "osr", "tl", "ndtw", "sdtw", "cls")}
                                 for r in rows])
    summary.update(planner=planner, split=split, goal_type=goal_type, horizon=horizon,
                   threshold=rows[0]["threshold"], first_seed=seed,
                   eval_s=round(time.perf_counter() - started, 2),
                   scorer=str(scorer_workdir) if scorer_workdir else None,
                   world_model=str(world_model_workdir) if world_model_workdir else None,
                   world_model_latent=world_model_latent if world_model_workdir else None)
    result = {"summary": summary, "episodes": rows}
    if out is not None:
        write_eval_info(result, out)
    return result
