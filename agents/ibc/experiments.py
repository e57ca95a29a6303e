"""Run a grid of behavioural-cloning experiments (train, then evaluate) and tabulate them.

A cell is ``CONFIG:ARGUMENT:SEED``, e.g. ``blockpush:cpu_dfo:0`` for
``configs/ibc/blockpush.py:cpu_dfo`` trained with ``--config.seed=0``. Each cell lives in
``ROOT/<config>_<argument>_s<seed>/``; its training and evaluation run as ``worldsim train`` /
``worldsim eval`` subprocesses under ``/usr/bin/time``, whose CPU and wall seconds are kept
beside the results (``train_time.json``, ``eval_time.json``). Finished cells are skipped, so
re-running the same command resumes an interrupted grid.

    python -m worldsim.agents.ibc.experiments run --root runs/table3 --workers 2 \\
        blockpush:cpu_dfo:0 blockpush:cpu_mse:0 multimodal:cpu_dfo:0
    python -m worldsim.agents.ibc.experiments report --root runs/table3
    python -m worldsim.agents.ibc.experiments report --root runs/table3 --metric avg_max_reward
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

CONFIG_FOLDER = Path(__file__).resolve().parents[2] / "configs" / "ibc"


class Cell(NamedTuple):
    """One training run: configs/ibc/<config>.py:<argument> with training seed ``seed``."""

    config: str
    argument: str
    seed: int

    @classmethod
    def parse(cls, text: str) -> "Cell":
        parts = text.split(":")
        if len(parts) != 3 or not parts[2].isdigit():
            raise ValueError(f"cell {text!r} is not CONFIG:ARGUMENT:SEED, e.g. blockpush:cpu_dfo:0")
        if not (CONFIG_FOLDER / f"{parts[0]}.py").exists():
            known = sorted(p.stem for p in CONFIG_FOLDER.glob("*.py") if p.stem != "__init__")
            raise ValueError(f"cell {text!r}: no config {parts[0]!r}; known: {', '.join(known)}")
        return cls(parts[0], parts[1], int(parts[2]))

    def name(self) -> str:
        argument = re.sub(r"[^A-Za-z0-9]+", "_", self.argument).strip("_")
        return f"{self.config}_{argument}_s{self.seed}"


def _timed(command: list[str], time_file: Path, log_file: Path) -> int:
    """Runs ``command`` under /usr/bin/time, writing {"user_s", "system_s", "wall_s"}."""
    raw = time_file.with_suffix(".txt")
    with open(log_file, "a") as log:
        code = subprocess.call(["/usr/bin/time", "-o", str(raw), "-f", "%U %S %e", *command],
                               stdout=log, stderr=subprocess.STDOUT)
    fields = raw.read_text().split()[-3:]
    user, system, wall = (float(f) for f in fields)
    time_file.write_text(json.dumps({"user_s": user, "system_s": system, "wall_s": wall,
                                     "command": " ".join(command), "exit_code": code}))
    raw.unlink()
    return code


def run_cell(cell: Cell, root: Path, episodes: int, num_envs: int) -> str:
    """Trains and evaluates one cell (skipping whatever is already done); returns a summary."""
    workdir = root / cell.name()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "run.log"
    worldsim = str(Path(sys.executable).with_name("worldsim"))
    if not (workdir / "train_time.json").exists():
        code = _timed([worldsim, "train", "--config",
                       f"{CONFIG_FOLDER / cell.config}.py:{cell.argument}", "--workdir",
                       str(workdir), f"--config.seed={cell.seed}"],
                      workdir / "train_time.json", log)
        if code:
            (workdir / "train_time.json").unlink()
            return f"{cell.name()}: training failed (exit {code}), see {log}"
    info_path = workdir / "eval_info.json"
    if not _evaluated(info_path, episodes):
        code = _timed([worldsim, "eval", "--workdir", str(workdir), "--episodes", str(episodes),
                       "--num-envs", str(num_envs), "--videos", "1"],
                      workdir / "eval_time.json", log)
        if code:
            return f"{cell.name()}: evaluation failed (exit {code}), see {log}"
    success = json.loads(info_path.read_text())["overall"]["pc_success"]
    return f"{cell.name()}: {success:.0f} % success"


def _evaluated(info_path: Path, episodes: int) -> bool:
    if not info_path.exists():
        return False
    return json.loads(info_path.read_text())["overall"]["n_episodes"] == episodes


def run_grid(cells: list[Cell], root: Path, workers: int, episodes: int, num_envs: int) -> None:
    """Runs the cells in order, ``workers`` at a time, printing each one's result as it ends."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for summary in pool.map(lambda c: run_cell(c, root, episodes, num_envs), cells):
            print(summary, flush=True)


def collect_results(root: Path) -> dict[tuple[str, str], list[dict]]:
    """{(config, argument): [{"seed", "success", "avg_max_reward", "episodes", "train_cpu_s",
    "steps"}, ...]}; success in %, avg_max_reward (mean over episodes of the best reward) in
    [0, 1]."""
    results: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for info_path in sorted(root.glob("*/eval_info.json")):
        workdir = info_path.parent
        match = re.fullmatch(r"(.+?)_(cpu_.+|dfo|langevin|autoregressive|mse|mdn)_s(\d+)",
                             workdir.name)
        if not match or not (workdir / "train_time.json").exists():
            continue
        overall = json.loads(info_path.read_text())["overall"]
        timing = json.loads((workdir / "train_time.json").read_text())
        config = json.loads((workdir / "config.json").read_text())
        config = config.get("config", config)
        results[(match[1], match[2])].append({
            "seed": int(match[3]), "success": overall["pc_success"],
            "avg_max_reward": overall["avg_max_reward"],
            "episodes": overall["n_episodes"],
            "train_cpu_s": timing["user_s"] + timing["system_s"],
            "steps": config["train"]["steps"]})
    return results


METRICS = {"success": ("{:.0f}", "{:.1f} ± {:.1f}"),
           "avg_max_reward": ("{:.2f}", "{:.2f} ± {:.2f}")}


def format_cell(runs: list[dict], metric: str = "success") -> str:
    """"91 ± 2 (3 seeds, 100 ep., 207 CPU-s)" for ``metric`` (a key of METRICS); one seed
    shows no ±."""
    single, several = METRICS[metric]
    values = [r[metric] for r in runs]
    cpu = statistics.mean(r["train_cpu_s"] for r in runs)
    episodes = runs[0]["episodes"]
    if len(runs) == 1:
        return f"{single.format(values[0])} (1 seed, {episodes} ep., {cpu:.0f} CPU-s)"
    mean_and_spread = several.format(statistics.mean(values), statistics.stdev(values))
    return f"{mean_and_spread} ({len(runs)} seeds, {episodes} ep., {cpu:.0f} CPU-s each)"


def report(root: Path, rows: list[str], columns: list[str], metric: str = "success") -> str:
    """A markdown table of ``metric`` (a key of METRICS): one row per method argument, one
    column per config."""
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r} is not one of {sorted(METRICS)}")
    results = collect_results(root)
    lines = ["| method | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in rows:
        cells = [format_cell(results[(c, row)], metric) if (c, row) in results else "not run"
                 for c in columns]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train and evaluate cells, skipping finished ones")
    run.add_argument("cells", nargs="+", metavar="CONFIG:ARGUMENT:SEED")
    run.add_argument("--root", required=True, type=Path)
    run.add_argument("--workers", type=int, default=1, help="cells run side by side")
    run.add_argument("--episodes", type=int, default=100)
    run.add_argument("--num-envs", type=int, default=2)
    show = sub.add_parser("report", help="print the results under ROOT as a markdown table")
    show.add_argument("--root", required=True, type=Path)
    show.add_argument("--rows", nargs="+", default=[f"cpu_{m}" for m in
                                                    ("dfo", "langevin", "autoregressive",
                                                     "mse", "mdn")])
    show.add_argument("--columns", nargs="+", default=["blockpush", "blockpush_pixels",
                                                       "multitarget", "multimodal",
                                                       "blockinsert", "blocksort"])
    show.add_argument("--metric", choices=sorted(METRICS), default="success",
                      help="success: %% of episodes solved; avg_max_reward: mean best reward "
                           "(partial progress, e.g. one of two blocks placed = 0.5)")
    args = parser.parse_args(argv)
    if args.command == "run":
        try:
            cells = [Cell.parse(text) for text in args.cells]
        except ValueError as err:
            parser.error(str(err))
        run_grid(cells, args.root, args.workers, args.episodes, args.num_envs)
    else:
        print(report(args.root, args.rows, args.columns, args.metric))
    return 0


if __name__ == "__main__":
    sys.exit(main())
