"""Environment steps per second, next to the raw pybullet cost of the same work.

For every block environment the script times, in one process and on the env's own pybullet
scene:

* the *floor*: the bare pybullet calls one control step cannot do without — the
  ``calculateInverseKinematics`` call with the scene's arguments, the
  ``setJointMotorControlArray`` that hands its answer to the motors (without it the arm would
  not move and the physics would be different work) and 24 ``stepSimulation`` calls; for image
  observations also one ``getCameraImage`` of the same size with the same renderer
  (ER_TINY_RENDERER) and precomputed camera matrices. Raw ``pybullet`` module functions with
  ``physicsClientId`` are called, not the ``BulletClient`` wrapper the scene uses;
* ``env.step`` of ``gymnasium.make(id)`` (state observations) and of
  ``gymnasium.make(id, obs_mode="rgb")`` (180x240 image observations), random actions.

Pairing. Work is timed episode by episode: an env episode (reset untimed, then ``env.step``
until termination or truncation) and a floor episode from the same reset seed with the same
pre-drawn actions and as many control steps, in alternating order. A repeat is a fixed list of
seeds; the overhead is the median over repeats of ``env_seconds / floor_seconds - 1``. Pairing
at the episode (about 0.3 s of state stepping) keeps a colleague's process that takes the CPU
for a while from landing on only one side. Image episodes are cut at ``--rgb-episode-steps``
(via ``gymnasium.make(..., max_episode_steps=)``) for the same reason. Both wall-clock
(``time.perf_counter``) and this thread's CPU time (``time.thread_time``, which a loaded machine
disturbs less) are recorded; steps/s are wall-clock. Particle-v0 has no pybullet floor: only its
steps/s is reported.

    .venv/bin/python benchmarks/env_steps.py                      # every env id
    .venv/bin/python benchmarks/env_steps.py --env worldsim/BlockPush-v0 --json /tmp/steps.json
    .venv/bin/python benchmarks/env_steps.py --env worldsim/BlockPush-v0 --profile state
    .venv/bin/python benchmarks/env_steps.py --env worldsim/BlockPush-v0 --by-call state

An id whose env fails to construct (a module still being written) is skipped, and the skip is
printed under the table.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import gymnasium
import numpy as np
import pybullet

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _machine  # noqa: E402

import worldsim.envs  # noqa: E402,F401  (registers the ids)
from worldsim.envs import ENV_IDS  # noqa: E402
from worldsim.envs.manipulation import scene as scene_module  # noqa: E402
from worldsim.envs.manipulation.base import MAX_ACTION  # noqa: E402

IMAGE_SIZE = (180, 240)  # (height, width), the block envs' default


@dataclass
class Result:
    env_id: str
    obs_mode: str
    episode_steps: int  # the episode limit used (registered, or --rgb-episode-steps)
    steps: list[int] = field(default_factory=list)  # control steps per repeat
    env_seconds: list[float] = field(default_factory=list)  # wall, per repeat
    env_cpu_seconds: list[float] = field(default_factory=list)  # thread CPU, per repeat
    floor_seconds: list[float] = field(default_factory=list)
    floor_cpu_seconds: list[float] = field(default_factory=list)
    # per-component floor wall seconds, summed over each repeat: {"ik": [...], "motor": [...], ...}
    floor_parts: dict[str, list[float]] = field(default_factory=dict)
    load_before: str = ""
    load_after: str = ""

    @property
    def env_steps_per_s(self) -> float:
        return statistics.median(n / t for n, t in zip(self.steps, self.env_seconds))

    @property
    def floor_steps_per_s(self) -> float | None:
        if not self.floor_seconds:
            return None
        return statistics.median(n / t for n, t in zip(self.steps, self.floor_seconds))

    def ratios(self, cpu: bool = False) -> list[float]:
        env, floor = ((self.env_cpu_seconds, self.floor_cpu_seconds) if cpu
                      else (self.env_seconds, self.floor_seconds))
        return [e / f for e, f in zip(env, floor)]

    def overhead(self, cpu: bool = False) -> float | None:
        return statistics.median(self.ratios(cpu)) - 1 if self.floor_seconds else None

    def part_ms(self) -> dict[str, float]:
        """Median ms per control step of each floor component."""
        return {k: 1e3 * statistics.median(t / n for t, n in zip(v, self.steps))
                for k, v in self.floor_parts.items()}


class BareBlockWork:
    """The floor: what one control step of a block env costs in bare pybullet calls.

    Works on the env's own scene (same bodies, same contacts) through the raw ``pybullet``
    module functions with ``physicsClientId`` — not through ``pybullet_utils.BulletClient``,
    whose per-call ``functools.partial`` is the env's cost. The IK call takes exactly the
    arguments of ``XArmScene._inverse_kinematics``; its rest poses are the previous IK solution
    (the joints the motors were driving to) with the first two zeroed, instead of six
    ``getJointState`` reads — the reads are the env's cost, not the floor's. The only Python
    in the floor is the clip of the target and the per-part timers (a few µs of a ~3 ms step).
    """

    def __init__(self, scene, image_size: tuple[int, int] | None):
        self.scene = scene
        self.cid = scene.client._client  # the physics client id behind the BulletClient
        self.robot = scene.robot
        self.link = scene_module._ARM_LINK
        self.joints = list(scene_module._ARM_JOINTS)
        self.forces = [scene_module._JOINT_FORCE] * len(self.joints)
        self.down = scene_module._DOWN
        self.height = scene_module.EFFECTOR_HEIGHT
        self.substeps = scene_module.SUBSTEPS
        self.lo = np.array([scene_module.WORKSPACE_X[0], scene_module.WORKSPACE_Y[0]])
        self.hi = np.array([scene_module.WORKSPACE_X[1], scene_module.WORKSPACE_Y[1]])
        self.limits = ([-17.0] * 6, [17.0] * 6, [34.0] * 6)
        self.image_size = image_size
        if image_size is not None:
            height, width = image_size
            cam = scene_module.Camera()
            self.view = pybullet.computeViewMatrix(cam.eye, cam.target, (0, 0, 1))
            self.projection = pybullet.computeProjectionMatrixFOV(
                cam.vertical_fov_deg, width / height, cam.near, cam.far)
        self.begin_episode()

    def begin_episode(self) -> None:
        """After an env reset: start from the scene's target and its home joints."""
        self.target = np.array(self.scene.effector_target, dtype=np.float64)
        self.rest = [float(x) for x in self.scene.home_joints]
        self.rest[0] = self.rest[1] = 0.0

    def step(self, delta: np.ndarray, parts: dict[str, float]) -> None:
        cid = self.cid
        t0 = time.perf_counter()
        self.target = np.clip(self.target + delta, self.lo, self.hi)
        joints = pybullet.calculateInverseKinematics(
            self.robot, self.link, (float(self.target[0]), float(self.target[1]), self.height),
            self.down, lowerLimits=self.limits[0], upperLimits=self.limits[1],
            jointRanges=self.limits[2], restPoses=self.rest, maxNumIterations=100,
            residualThreshold=1e-10, physicsClientId=cid)
        t1 = time.perf_counter()
        pybullet.setJointMotorControlArray(self.robot, self.joints, pybullet.POSITION_CONTROL,
                                           targetPositions=joints[:6], forces=self.forces,
                                           physicsClientId=cid)
        t2 = time.perf_counter()
        step_simulation = pybullet.stepSimulation
        for _ in range(self.substeps):
            step_simulation(physicsClientId=cid)
        t3 = time.perf_counter()
        parts["ik"] += t1 - t0
        parts["motor"] += t2 - t1
        parts["step_x24"] += t3 - t2
        if self.image_size is not None:
            height, width = self.image_size
            pybullet.getCameraImage(width, height, self.view, self.projection,
                                    renderer=pybullet.ER_TINY_RENDERER, physicsClientId=cid)
            parts["camera"] += time.perf_counter() - t3
        self.rest = list(joints[:6])
        self.rest[0] = self.rest[1] = 0.0


def _actions(env: gymnasium.Env, n: int, seed: int) -> np.ndarray:
    space = env.action_space
    rng = np.random.default_rng(seed)
    return rng.uniform(space.low, space.high, (n, *space.shape)).astype(space.dtype)


def env_episode(env: gymnasium.Env, actions: np.ndarray, seed: int) -> tuple[int, float, float]:
    """(steps, wall s, CPU s) inside ``env.step`` for one episode from ``reset(seed)`` (untimed)."""
    env.reset(seed=seed)
    wall = cpu = 0.0
    step, clock, cpu_clock = env.step, time.perf_counter, time.thread_time
    for n, action in enumerate(actions, 1):
        c0, t0 = cpu_clock(), clock()
        _, _, terminated, truncated, _ = step(action)
        t1, c1 = clock(), cpu_clock()
        wall += t1 - t0
        cpu += c1 - c0
        if terminated or truncated:
            return n, wall, cpu
    return len(actions), wall, cpu


def floor_episode(env: gymnasium.Env, work: BareBlockWork, actions: np.ndarray, seed: int,
                  parts: dict[str, float]) -> tuple[float, float]:
    """(wall s, CPU s) of bare pybullet work for ``len(actions)`` control steps after an
    untimed ``env.reset(seed)``; per-component wall seconds are added to ``parts``."""
    env.reset(seed=seed)
    work.begin_episode()
    deltas = np.clip(actions.astype(np.float64), -MAX_ACTION, MAX_ACTION)  # as BlockTaskEnv.step
    c0, t0 = time.thread_time(), time.perf_counter()
    for delta in deltas:
        work.step(delta, parts)
    t1, c1 = time.perf_counter(), time.thread_time()
    return t1 - t0, c1 - c0


def measure(env_id: str, obs_mode: str, episodes: int, repeats: int,
            episode_steps: int | None = None, seed: int = 0) -> Result:
    kwargs = {} if obs_mode == "state" else {"obs_mode": obs_mode}
    if episode_steps is not None:
        kwargs["max_episode_steps"] = episode_steps
    env = gymnasium.make(env_id, **kwargs)
    try:
        limit = env.spec.max_episode_steps
        seeds = [seed + e for e in range(episodes)]
        actions = {s: _actions(env, limit, s) for s in seeds}
        result = Result(env_id, obs_mode, limit, load_before=_machine.load_average())
        scene = getattr(env.unwrapped, "scene", None)
        work = None
        if scene is not None:
            image = IMAGE_SIZE if obs_mode == "rgb" else None
            if image is not None and tuple(env.unwrapped.image_size) != image:
                raise RuntimeError(f"{env_id} images are {env.unwrapped.image_size}, not {image}")
            work = BareBlockWork(scene, image)
        # Warm-up, and each seed's episode length (deterministic under the seed and actions): the
        # floor episode of a seed runs that many control steps.
        lengths = {s: env_episode(env, actions[s], s)[0] for s in seeds}
        if work is not None:
            floor_episode(env, work, actions[seeds[0]][:lengths[seeds[0]]], seeds[0],
                          defaultdict(float))
        for r in range(repeats):
            steps = 0
            env_wall = env_cpu = floor_wall = floor_cpu = 0.0
            parts: dict[str, float] = defaultdict(float)
            for e, s in enumerate(seeds):
                order = ("env", "floor") if (r + e) % 2 == 0 else ("floor", "env")
                for what in order:
                    if what == "env":
                        n, w, c = env_episode(env, actions[s], s)
                        if n != lengths[s]:
                            raise RuntimeError(f"{env_id} seed {s}: episode of {n} steps, "
                                               f"{lengths[s]} before; the env is not deterministic")
                        steps += n
                        env_wall, env_cpu = env_wall + w, env_cpu + c
                    elif work is not None:
                        w, c = floor_episode(env, work, actions[s][:lengths[s]], s, parts)
                        floor_wall, floor_cpu = floor_wall + w, floor_cpu + c
            result.steps.append(steps)
            result.env_seconds.append(env_wall)
            result.env_cpu_seconds.append(env_cpu)
            if work is not None:
                result.floor_seconds.append(floor_wall)
                result.floor_cpu_seconds.append(floor_cpu)
                for key, value in parts.items():
                    result.floor_parts.setdefault(key, []).append(value)
        result.load_after = _machine.load_average()
        return result
    finally:
        env.close()


def profile(env_id: str, obs_mode: str, steps: int, top: int = 25) -> str:
    """cProfile of ``steps`` random-action env steps (resets excluded), sorted two ways."""
    kwargs = {} if obs_mode == "state" else {"obs_mode": obs_mode}
    env = gymnasium.make(env_id, **kwargs)
    limit = env.spec.max_episode_steps
    env_episode(env, _actions(env, limit, 0), 0)  # warm-up
    profiler = cProfile.Profile()
    done, seed = 0, 0
    while done < steps:
        seed += 1
        actions = _actions(env, min(limit, steps - done), seed)
        env.reset(seed=seed)
        profiler.enable()
        for n, action in enumerate(actions, 1):
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
        profiler.disable()
        done += n
    env.close()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


class _CallTimer:
    """Stands in for a scene's ``BulletClient``: calls the raw pybullet function with the client
    id and adds its wall time and count under the function's name."""

    def __init__(self, client, totals: dict[str, list[float]]):
        self._client, self._totals = client._client, totals

    def __getattr__(self, name):
        function = getattr(pybullet, name)
        if not callable(function):
            return function
        totals, client = self._totals, self._client

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            out = function(*args, physicsClientId=client, **kwargs)
            entry = totals[name]
            entry[0] += time.perf_counter() - t0
            entry[1] += 1
            return out
        return timed


def by_call(env_id: str, obs_mode: str, episodes: int = 4) -> str:
    """Per-step time of each pybullet function inside ``env.step``, next to the floor's parts.

    The scene's client is swapped for ``_CallTimer`` while stepping (not while resetting); the
    wrapper adds its own small cost to the "Python and the rest" line.
    """
    kwargs = {} if obs_mode == "state" else {"obs_mode": obs_mode, "max_episode_steps": 10}
    env = gymnasium.make(env_id, **kwargs)
    scene = env.unwrapped.scene
    client = scene.client
    work = BareBlockWork(scene, IMAGE_SIZE if obs_mode == "rgb" else None)
    limit = env.spec.max_episode_steps
    seeds = list(range(episodes))
    actions = {s: _actions(env, limit, s) for s in seeds}
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    floor_parts: dict[str, float] = defaultdict(float)
    env_seconds, floor_seconds, steps = 0.0, 0.0, 0
    try:
        for warm in (True, False):
            for s in seeds:
                env.reset(seed=s)
                if not warm:
                    scene.client = _CallTimer(client, totals)
                n = 0
                for action in actions[s]:
                    t0 = time.perf_counter()
                    _, _, terminated, truncated, _ = env.step(action)
                    if not warm:
                        env_seconds += time.perf_counter() - t0
                    n += 1
                    if terminated or truncated:
                        break
                scene.client = client
                seconds, _ = floor_episode(env, work, actions[s][:n], s,
                                           defaultdict(float) if warm else floor_parts)
                if not warm:
                    floor_seconds += seconds
                    steps += n
    finally:
        scene.client = client
        env.close()
    lines = [f"{env_id} {obs_mode}: {steps} steps; ms per step",
             f"  env.step {1e3 * env_seconds / steps:.3f} (pybullet calls timed one by one)",
             f"  floor    {1e3 * floor_seconds / steps:.3f}"]
    inside = 0.0
    for name, (seconds, count) in sorted(totals.items(), key=lambda kv: -kv[1][0]):
        inside += seconds
        lines.append(f"  env   {name:30s} {1e3 * seconds / steps:8.4f}  "
                     f"({count / steps:.1f} calls/step, {1e6 * seconds / count:.1f} µs/call)")
    lines.append(f"  env   {'all pybullet calls':30s} {1e3 * inside / steps:8.4f}")
    lines.append(f"  env   {'Python and the rest':30s} {1e3 * (env_seconds - inside) / steps:8.4f}")
    for name, seconds in floor_parts.items():
        lines.append(f"  floor {name:30s} {1e3 * seconds / steps:8.4f}")
    return "\n".join(lines)


def table(results: list[Result]) -> str:
    lines = ["| env | obs | env steps/s | floor steps/s | overhead (wall) "
             "| wall range over repeats "
             "| overhead (CPU time) | floor ms/step: IK + motor + 24×step (+ camera) |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in results:
        if r.floor_seconds:
            parts = r.part_ms()
            detail = " + ".join(f"{parts[k]:.2f}" for k in ("ik", "motor", "step_x24", "camera")
                                if k in parts)
            ratios = r.ratios()
            lines.append(
                f"| {r.env_id} | {r.obs_mode} | {r.env_steps_per_s:.1f} | {r.floor_steps_per_s:.1f}"
                f" | {100 * r.overhead():+.1f}% | {100 * (min(ratios) - 1):+.1f}% … "
                f"{100 * (max(ratios) - 1):+.1f}% | {100 * r.overhead(cpu=True):+.1f}% "
                f"| {detail} |")
        else:
            lines.append(f"| {r.env_id} | {r.obs_mode} | {r.env_steps_per_s:.1f} "
                         f"| — (no pybullet)"
                         f" | — | — | — | — |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", action="append", help="env id (repeatable); default: all ids")
    parser.add_argument("--obs", choices=("state", "rgb", "both"), default="both")
    parser.add_argument("--episodes", type=int, default=4,
                        help="episodes per repeat (state obs, registered episode limit)")
    parser.add_argument("--rgb-episodes", type=int, default=4, help="episodes per repeat (rgb)")
    parser.add_argument("--rgb-episode-steps", type=int, default=10,
                        help="episode limit for image observations (keeps pairs short)")
    parser.add_argument("--repeats", type=int, default=7, help="repeats of each (median taken)")
    parser.add_argument("--json", help="write raw timings and the machine description here")
    parser.add_argument("--profile", choices=("state", "rgb"),
                        help="instead of timing, cProfile --profile-steps env steps of each --env")
    parser.add_argument("--profile-steps", type=int, default=1000)
    parser.add_argument("--by-call", choices=("state", "rgb"),
                        help="instead of timing, time each pybullet function inside env.step "
                             "of each --env, next to the floor's parts")
    args = parser.parse_args(argv)
    env_ids = args.env or list(ENV_IDS)
    modes = ("state", "rgb") if args.obs == "both" else (args.obs,)

    if args.by_call:
        for env_id in env_ids:
            print(by_call(env_id, args.by_call, args.episodes))
        return 0

    if args.profile:
        for env_id in env_ids:
            print(f"## cProfile {env_id} obs={args.profile}, {args.profile_steps} steps\n")
            print(profile(env_id, args.profile, args.profile_steps))
        return 0

    machine = _machine.describe()
    results: list[Result] = []
    skipped: list[str] = []
    for env_id in env_ids:
        try:
            gymnasium.make(env_id).close()
        except Exception as error:  # a module still being written
            skipped.append(f"{env_id}: {type(error).__name__}: {error}")
            print(f"  skipping {env_id}: {type(error).__name__}: {error}", file=sys.stderr)
            continue
        for mode in modes:
            if mode == "state":
                result = measure(env_id, mode, args.episodes, args.repeats)
            else:
                result = measure(env_id, mode, args.rgb_episodes, args.repeats,
                                 episode_steps=args.rgb_episode_steps)
            results.append(result)
            print(f"  {env_id} {mode}: {result.env_steps_per_s:.1f} steps/s"
                  + (f", floor {result.floor_steps_per_s:.1f}, overhead "
                     f"{100 * result.overhead():+.1f}% wall / "
                     f"{100 * result.overhead(True):+.1f}% cpu"
                     if result.floor_seconds else "")
                  + f"  (load {result.load_before} -> {result.load_after})", file=sys.stderr)
    machine["load_average_at_end"] = _machine.load_average()
    print("Machine:\n" + _machine.markdown(machine) + "\n")
    print(f"Per repeat: {args.episodes} episodes at the registered limit (state), "
          f"{args.rgb_episodes} episodes of ≤ {args.rgb_episode_steps} steps (rgb, "
          f"{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}); {args.repeats} repeats; medians over repeats.\n")
    print(table(results))
    for line in skipped:
        print(f"\nSkipped (env failed to construct) — {line}")
    if args.json:
        payload = {"machine": machine, "skipped": skipped, "argv": sys.argv,
                   "results": [{**asdict(r), "env_steps_per_s": r.env_steps_per_s,
                                "floor_steps_per_s": r.floor_steps_per_s,
                                "overhead_wall": r.overhead(), "overhead_cpu": r.overhead(True),
                                "floor_ms_per_step": r.part_ms()}
                               for r in results]}
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
