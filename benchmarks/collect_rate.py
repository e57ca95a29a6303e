"""Demonstrations collected per second by ``worldsim.data.collect``, ``num_envs`` 1 and 2.

Each repeat, for the same episode seeds (0 .. episodes-1) and in one process:

* ``plain loop``: ``gymnasium.make(id)`` + its oracle, ``reset(seed=i)`` then ``act``/``step``
  until the episode ends — nothing recorded (the env's and oracle's own cost; its reset, oracle
  and step seconds are reported apart);
* ``pybullet floor``: the oracle actions of that loop replayed as bare pybullet work on the
  env's scene (IK + motor command + 24 ``stepSimulation`` per control step, see
  ``env_steps.BareBlockWork``), resets untimed — so the floor holds no reset physics (the
  100-substep settle), which the other rows do;
* ``collect(num_envs=1)`` and ``collect(num_envs=2)`` into a temporary dir (``overwrite=True``,
  ``progress=False``), timed from the call to its return: env construction (worker start-up for
  num_envs 2), rollouts, the Minari HDF5 writes and the rename all count.

Demos/s = episodes / seconds; steps/s = recorded control steps / seconds. Ratios are against
the floor and the plain loop measured in the same repeat (medians over repeats). CPU seconds
(this thread for the floor and the plain loop; the process plus its reaped worker processes for
``collect``, from ``getrusage``) are reported too: on a machine that colleagues load, wall-clock
rows measured ten seconds apart see different loads, CPU time much less so.

    .venv/bin/python benchmarks/collect_rate.py        # BlockPush, 40 episodes, 3 repeats
    .venv/bin/python benchmarks/collect_rate.py --episodes 40 --repeats 3 --json /tmp/collect.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections import defaultdict

import gymnasium
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _machine  # noqa: E402
import env_steps  # noqa: E402

import worldsim.envs  # noqa: E402,F401
from worldsim.data import collect  # noqa: E402
from worldsim.data.dataset import DATA_SUBDIR, METADATA_FILE  # noqa: E402
from worldsim.envs import make_oracle  # noqa: E402


def plain_loop(env_id: str, episodes: int) -> tuple[dict[str, float], int, list[np.ndarray]]:
    """({"total", "reset", "oracle", "step", "cpu"} seconds, steps, per-episode oracle actions)
    of an unrecorded oracle rollout loop; "cpu" is this thread's CPU time over the loop."""
    env = gymnasium.make(env_id)
    oracle = make_oracle(env)
    all_actions, steps = [], 0
    seconds = {"reset": 0.0, "oracle": 0.0, "step": 0.0}
    clock = time.perf_counter
    cpu0 = time.thread_time()
    try:
        for seed in range(episodes):
            t0 = clock()
            obs, _ = env.reset(seed=seed)
            oracle.reset()
            seconds["reset"] += clock() - t0
            actions, done = [], False
            while not done:
                t0 = clock()
                action = np.asarray(oracle.act(obs), dtype=env.action_space.dtype)
                t1 = clock()
                obs, _, terminated, truncated, _ = env.step(action)
                t2 = clock()
                seconds["oracle"] += t1 - t0
                seconds["step"] += t2 - t1
                actions.append(action)
                done = terminated or truncated
            steps += len(actions)
            all_actions.append(np.stack(actions))
    finally:
        seconds["cpu"] = time.thread_time() - cpu0
        env.close()
    seconds["total"] = seconds["reset"] + seconds["oracle"] + seconds["step"]
    return seconds, steps, all_actions


def pybullet_floor(env_id: str, all_actions: list[np.ndarray]) -> tuple[float, float]:
    """(wall s, CPU s) of bare pybullet work replaying the given episodes (resets untimed)."""
    env = gymnasium.make(env_id)
    try:
        work = env_steps.BareBlockWork(env.unwrapped.scene, None)
        parts: dict[str, float] = defaultdict(float)
        timings = [env_steps.floor_episode(env, work, actions, seed, parts)
                   for seed, actions in enumerate(all_actions)]
        return sum(t[0] for t in timings), sum(t[1] for t in timings)
    finally:
        env.close()


def _cpu_seconds() -> tuple[float, float]:
    """User + system CPU seconds of this process and of its waited-for children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def timed_collect(env_id: str, episodes: int, num_envs: int, root: str
                  ) -> tuple[float, float, int, float]:
    """(wall s, CPU s of the process and its workers, recorded steps, of which worker CPU s)
    of one ``collect`` call."""
    out = os.path.join(root, f"n{num_envs}")
    (own0, children0), t0 = _cpu_seconds(), time.perf_counter()
    collect(env_id, episodes=episodes, out=out, num_envs=num_envs, overwrite=True,
            progress=False)
    seconds = time.perf_counter() - t0
    own1, children1 = _cpu_seconds()
    workers = children1 - children0
    cpu = own1 - own0 + workers
    with open(os.path.join(out, DATA_SUBDIR, METADATA_FILE)) as f:
        meta = json.load(f)["worldsim"]
    if meta["num_episodes"] != episodes:
        raise RuntimeError(f"collect wrote {meta['num_episodes']} episodes, not {episodes}")
    return seconds, cpu, int(meta["total_steps"]), workers


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="worldsim/BlockPush-v0")
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", help="write raw timings and the machine description here")
    args = parser.parse_args(argv)

    machine = _machine.describe()
    rows: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with tempfile.TemporaryDirectory(prefix="collect_rate-") as root:
        # warm-up: imports, pybullet data, the Minari writer
        timed_collect(args.env, 2, 1, root)
        for r in range(args.repeats):
            load = _machine.load_average()
            plain, steps, actions = plain_loop(args.env, args.episodes)
            seconds = plain["total"]
            floor, floor_cpu = pybullet_floor(args.env, actions)
            measured = {"pybullet floor": (floor, floor_cpu, steps, 0.0),
                        "plain loop": (seconds, plain["cpu"], steps, 0.0)}
            for part in ("reset", "oracle", "step"):
                rows["plain loop"][part].append(plain[part])
            for n in args.num_envs:
                measured[f"collect --num-envs {n}"] = timed_collect(args.env, args.episodes, n,
                                                                    root)
            for name, (sec, cpu, st, workers) in measured.items():
                rows[name]["seconds"].append(sec)
                rows[name]["worker_cpu_seconds"].append(workers)
                rows[name]["cpu_seconds"].append(cpu)
                rows[name]["steps"].append(st)
                rows[name]["vs_floor"].append(sec / floor)
                rows[name]["vs_plain"].append(sec / seconds)
                rows[name]["cpu_vs_floor"].append(cpu / floor_cpu)
            print(f"  repeat {r}: " + ", ".join(f"{k} {v[0]:.2f}s ({v[1]:.2f} cpu)"
                                              for k, v in measured.items())
                  + f"  (load {load} -> {_machine.load_average()})", file=sys.stderr)
    machine["load_average_at_end"] = _machine.load_average()

    print("Machine:\n" + _machine.markdown(machine) + "\n")
    print(f"{args.env}, oracle policy, {args.episodes} episodes (seeds 0..{args.episodes - 1}), "
          f"state obs; medians over {args.repeats} repeats.\n")
    print("| run | seconds | demos/s | steps/s | time / pybullet floor | time / plain loop "
          "| CPU s (of which workers) | CPU / floor CPU |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    names = ["pybullet floor", "plain loop", *(f"collect --num-envs {n}" for n in args.num_envs)]
    for name in names:
        v = rows[name]
        sec = statistics.median(v["seconds"])
        steps = statistics.median(v["steps"])
        print(f"| {name} | {sec:.2f} | {args.episodes / sec:.2f} | {steps / sec:.0f} | "
              f"{statistics.median(v['vs_floor']):.2f} | {statistics.median(v['vs_plain']):.2f} | "
              f"{statistics.median(v['cpu_seconds']):.2f} "
              f"({statistics.median(v['worker_cpu_seconds']):.2f}) | "
              f"{statistics.median(v['cpu_vs_floor']):.2f} |")
    plain, floor_seconds = rows["plain loop"], rows["pybullet floor"]["seconds"]
    step_vs_floor = statistics.median(s / f for s, f in zip(plain["step"], floor_seconds))
    print("\nPlain loop split (median s): " + ", ".join(
        f"{part} {statistics.median(plain[part]):.2f}" for part in ("reset", "oracle", "step"))
        + f"; env.step alone / pybullet floor = {step_vs_floor:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "argv": sys.argv, "env": args.env,
                       "episodes": args.episodes,
                       "rows": {k: dict(v) for k, v in rows.items()}}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
