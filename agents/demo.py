"""``worldsim demo``: the whole loop on BlockPush in a few CPU minutes.

collect oracle demonstrations → train an implicit (IBC, DFO) and an explicit (MSE) policy →
evaluate both on the same seeded episodes → print a success table, write rollout videos, an
energy-landscape plot and learning curves under ``out``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from worldsim.agents import load
from worldsim.agents.evaluation import evaluate_workdir
from worldsim.agents.ibc.agent import energy_landscape
from worldsim.agents.inputs import model_inputs
from worldsim.agents.training import make_train_task
from worldsim.data import collect, read_metadata
from worldsim.envs import make_oracle
from worldsim.eval.plots import plot_energy_landscape, plot_learning_curves
from worldsim.train.configuration import load_config
from worldsim.train.loop import train

ENV_ID = "worldsim/BlockPush-v0"
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "ibc" / "blockpush.py"
# Demonstrations start at reset seed 1000 so the evaluation episodes (seeds 0..N-1) are held out.
FIRST_DEMO_SEED = 1000


def demo_configs(dataset: Path, steps_scale: float = 1.0) -> dict[str, Any]:
    """The two CPU-sized configs the demo trains ({"implicit": ..., "explicit": ...})."""
    configs = {"implicit": load_config(f"{CONFIG}:cpu"), "explicit": load_config(f"{CONFIG}:cpu_mse")}
    for config in configs.values():
        config.dataset = str(dataset)
        config.train.steps = max(int(config.train.steps * steps_scale), 1)
    return configs


def write_energy_plot(workdir: Path, path: Path, seed: int = 0, grid_size: int = 101) -> Path:
    """Energy over the action box for the first observation of episode ``seed``."""
    policy = load(workdir)
    env = gymnasium.make(ENV_ID)
    obs, _ = env.reset(seed=seed)
    policy.reset()
    chosen = policy.act(obs)
    window = policy.history.frames
    inputs = model_inputs(window, policy.state_keys, policy.use_images, policy.normalization)
    low, high = np.asarray(policy.meta["bounds_low"]), np.asarray(policy.meta["bounds_high"])
    xs, ys = np.linspace(low[0], high[0], grid_size), np.linspace(low[1], high[1], grid_size)
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2).astype(np.float32)
    energies = energy_landscape(policy.model, {k: jnp.asarray(v) for k, v in inputs.items()},
                                jnp.asarray(grid))
    energies = np.asarray(jax.device_get(energies))[0].reshape(grid_size, grid_size)
    to_env = policy.normalization.denormalize_actions
    (x0, y0), (x1, y1) = to_env(low), to_env(high)
    oracle = make_oracle(env)
    oracle.reset()
    demonstrated = oracle.act(obs)
    env.close()
    return plot_energy_landscape(energies, (x0, x1, y0, y1), path,
                                 marks={"IBC action (argmin)": tuple(chosen),
                                        "oracle action": tuple(demonstrated)},
                                 title=f"BlockPush, seed {seed}, first step")


def run_demo(out: str | Path = "runs/demo", episodes: int = 1000, num_envs: int = 2,
             eval_episodes: int = 50, videos: int = 2, steps_scale: float = 1.0) -> dict[str, Any]:
    """Runs the demo; returns {"oracle": ..., "implicit": eval overall, "explicit": ...}."""
    out = Path(out)
    dataset = collect(ENV_ID, episodes=episodes, num_envs=num_envs, out=out / "data",
                      seed=FIRST_DEMO_SEED, overwrite=True)
    summary = {"oracle_success": read_metadata(dataset)["worldsim"]["success_rate"]}
    for name, config in demo_configs(dataset, steps_scale).items():
        workdir = out / name
        config.eval.num_envs = num_envs
        train(config, workdir, make_train_task(config))
        info = evaluate_workdir(workdir, eval_episodes, num_envs, videos)
        summary[name] = info["overall"]
    summary["energy_plot"] = str(write_energy_plot(out / "implicit", out / "plots" / "energy_landscape.png"))
    summary["learning_curves"] = str(plot_learning_curves(
        {"implicit (InfoNCE)": out / "implicit", "explicit (MSE)": out / "explicit"},
        out / "plots" / "learning_curves.png"))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The success table printed at the end of the demo."""
    rows = [("oracle (demonstrations)", 100 * summary["oracle_success"], "", "")]
    for name, label in (("implicit", "implicit BC (IBC, DFO)"), ("explicit", "explicit BC (MSE)")):
        o = summary[name]
        rows.append((label, o["pc_success"], f"{o['avg_max_reward']:.3f}", f"{o['n_episodes']}"))
    lines = [f"{'policy':<26} {'success %':>9} {'avg_max_reward':>15} {'episodes':>9}"]
    lines += [f"{a:<26} {b:>9.1f} {c:>15} {d:>9}" for a, b, c, d in rows]
    lines.append(f"energy landscape: {summary['energy_plot']}")
    lines.append(f"learning curves:  {summary['learning_curves']}")
    return "\n".join(lines)
