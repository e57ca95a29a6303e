"""The ``worldsim`` command: list environments, collect datasets, train, evaluate, demo,
picture a navigation house (``show-house``) and evaluate navigators (``nav-eval``).

Thin by design: every command parses its arguments and calls a library function. Bad user
input prints ``worldsim: error: ...`` and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DESCRIPTION = "worldsim: robotics simulation environments, trajectory datasets and agents on JAX."
EPILOG = """example:
  worldsim envs
  worldsim collect --env worldsim/Particle-v0 --policy oracle --episodes 200 --num-envs 2 \\
      --out data/particle
  worldsim show-house --seed 100003 --split val_unseen --out houses
  worldsim nav-eval --planner oracle --split val_unseen --episodes 200 --out results.json
  worldsim demo

Run `worldsim COMMAND --help` for the options of a command."""


def _error(message: str) -> int:
    print(f"worldsim: error: {message}", file=sys.stderr)
    return 2


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be ≥ 1")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number ≥ 0")
    return value


# --- envs -------------------------------------------------------------------------------------

def _describe_env(env_id: str) -> list[str]:
    """Lines describing one env (made, described, closed); an error line if it fails."""
    import gymnasium

    try:
        env = gymnasium.make(env_id)
    except Exception as err:  # a module that fails to import must not hide the other envs
        return [f"    error        {type(err).__name__}: {err}"]
    try:
        obs = env.observation_space
        spaces = obs.spaces.items() if hasattr(obs, "spaces") else [("<obs>", obs)]
        keys = ", ".join(f"{k} {s.shape} {s.dtype}" for k, s in spaces)
        return [f"    observation  {keys}", f"    action       {env.action_space}"]
    finally:
        env.close()


def _write_snapshot(env_id: str, folder: Path) -> Path:
    """Renders the env after its seed-0 reset and writes it as PNG into ``folder``."""
    import gymnasium
    import imageio.v3 as iio

    env = gymnasium.make(env_id, render_mode="rgb_array")
    try:
        env.reset(seed=0)
        path = folder / f"{env_id.split('/')[-1].removesuffix('-v0').lower()}.png"
        folder.mkdir(parents=True, exist_ok=True)
        iio.imwrite(path, env.render())
        return path
    finally:
        env.close()


def cmd_envs(args: argparse.Namespace) -> int:
    import gymnasium

    from worldsim.envs import ENV_IDS

    for env_id in ENV_IDS:
        limit = gymnasium.spec(env_id).max_episode_steps
        print(f"{env_id}  (step limit {limit})")
        for line in _describe_env(env_id):
            print(line)
        if args.snapshots:
            print(f"    snapshot     {_write_snapshot(env_id, Path(args.snapshots))}")
    return 0


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"key\": 1}}', got {text!r}")
    return value


# --- collect ----------------------------------------------------------------------------------

def _print_collect_summary(path: Path, seconds: float) -> None:
    from worldsim.data import read_metadata

    info = read_metadata(path)["worldsim"]
    episodes, successes = info["num_episodes"], info["num_successes"]
    print(f"collected {episodes} {info['policy']} episodes of {info['env_id']} in {seconds:.1f} s")
    print(f"  success rate  {100 * info['success_rate']:.1f} % ({successes}/{episodes})")
    print(f"  steps         {info['total_steps']}")
    print(f"  dataset       {path}")


def cmd_collect(args: argparse.Namespace) -> int:
    from worldsim.envs import check_env_id

    try:
        check_env_id(args.env)
    except ValueError as err:
        return _error(str(err))
    from worldsim.data import collect

    started = time.perf_counter()
    try:
        path = collect(args.env, policy=args.policy, episodes=args.episodes,
                       num_envs=args.num_envs, out=args.out, overwrite=args.overwrite,
                       obs_mode=args.obs_mode, seed=args.seed, noise_std=args.noise_std,
                       env_kwargs=args.env_kwargs, oracle_options=args.oracle_options)
    except (ValueError, FileExistsError) as err:
        return _error(str(err))
    _print_collect_summary(path, time.perf_counter() - started)
    return 0


# --- train / eval (skeletons) -----------------------------------------------------------------

def cmd_train(args: argparse.Namespace) -> int:
    from worldsim.agents.training import make_train_task
    from worldsim.data import DatasetError
    from worldsim.train.configuration import ConfigError, load_config
    from worldsim.train.loop import ConfigMismatch, TrainingDiverged, train

    try:
        config = load_config(args.config, args.overrides)
        task = make_train_task(config)
        train(config, args.workdir, task)
    except (ConfigError, ConfigMismatch, DatasetError, TrainingDiverged, FileNotFoundError,
            ValueError) as err:
        return _error(str(err))
    print(f"trained {config.agent} for {config.train.steps} steps -> {args.workdir}")
    return 0


def _run_agent(workdir: str) -> str | None:
    """The ``agent`` of the run in ``workdir`` (from its config.json), or None."""
    path = Path(workdir) / "config.json"
    return json.loads(path.read_text()).get("agent") if path.exists() else None


def cmd_eval_world_model(args: argparse.Namespace) -> int:
    from worldsim.worldmodel.evaluation import evaluate_world_model, format_table

    try:
        result = evaluate_world_model(args.workdir, episodes=args.episodes, videos=args.videos,
                                      out_dir=args.out, occlusion_window=args.occlusion_window,
                                      occlusion_tolerance=args.occlusion_tolerance)
    except (FileNotFoundError, ValueError) as err:
        return _error(str(err))
    print(format_table(result))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from worldsim.agents.evaluation import evaluate_workdir

    if _run_agent(args.workdir) == "worldmodel":
        return cmd_eval_world_model(args)
    try:
        info = evaluate_workdir(args.workdir, args.episodes, args.num_envs, args.videos)
    except (FileNotFoundError, ValueError) as err:
        return _error(str(err))
    overall = info["overall"]
    print(f"{info['env_id']}  checkpoint step {info['checkpoint_step']}  seeds {info['episode_seeds']}")
    print(f"  pc_success      {overall['pc_success']:.1f}")
    print(f"  avg_sum_reward  {overall['avg_sum_reward']:.3f}")
    print(f"  avg_max_reward  {overall['avg_max_reward']:.3f}")
    print(f"  n_episodes      {overall['n_episodes']}  ({overall['eval_s']:.1f} s)")
    print(f"  written         {Path(args.workdir) / 'eval_info.json'}")
    return 0


# --- demo -------------------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace) -> int:
    from worldsim.agents.demo import format_summary, run_demo

    summary = run_demo(args.out, episodes=args.episodes, num_envs=args.num_envs,
                       eval_episodes=args.eval_episodes, videos=args.videos,
                       steps_scale=args.steps_scale)
    print(format_summary(summary))
    print(f"videos: {Path(args.out) / 'implicit' / 'videos'}, {Path(args.out) / 'explicit' / 'videos'}")
    return 0


# --- show-house -------------------------------------------------------------------------------

def cmd_show_house(args: argparse.Namespace) -> int:
    from worldsim.envs.navigation.tasks import EpisodeSamplingError
    from worldsim.eval.navigation_plots import show_house

    try:
        paths = show_house(args.seed, split=args.split, out_dir=args.out,
                           episode_seed=args.episode_seed, panorama_size=args.panorama_size)
    except (ValueError, EpisodeSamplingError) as err:
        return _error(str(err))
    for path in paths:
        print(path)
    return 0


def _add_show_house(sub) -> None:
    p = sub.add_parser("show-house", help="draw a navigation house's map and panoramas as PNGs",
                       description="Write DIR/house_<N>_map.png (rooms, furniture, viewpoint graph "
                                   "and one instruction episode's path) and "
                                   "DIR/house_<N>_panoramas.png (RGB, semantics and depth at its "
                                   "start, middle and goal).")
    p.add_argument("--seed", type=int, required=True, metavar="N", help="house seed")
    p.add_argument("--split", default="train", metavar="SPLIT",
                   help="train, val_seen, val_unseen or test; the seed must be one of its "
                        "houses (default: train)")
    p.add_argument("--out", default=".", metavar="DIR", help="output folder (default: .)")
    p.add_argument("--episode-seed", type=int, default=0, metavar="S",
                   help="reset seed of the episode drawn (default: 0)")
    p.add_argument("--panorama-size", type=_positive_int, nargs=2, default=(128, 256),
                   metavar=("H", "W"), help="panorama height and width (default: 128 256)")
    p.set_defaults(handler=cmd_show_house)


# --- nav-eval ---------------------------------------------------------------------------------

def cmd_nav_eval(args: argparse.Namespace) -> int:
    from worldsim.agents.nav.evaluation import evaluate_navigation
    from worldsim.eval.navigation_metrics import format_metrics_table

    try:
        result = evaluate_navigation(args.planner, split=args.split, episodes=args.episodes,
                                     seed=args.seed, scorer_workdir=args.scorer,
                                     horizon=args.horizon, goal_type=args.goal_type, out=args.out,
                                     world_model_workdir=args.world_model,
                                     world_model_latent=args.world_model_latent)
    except (ValueError, FileNotFoundError) as err:
        return _error(str(err))
    summary = result["summary"]
    title = (f"{args.planner} on {args.split} ({args.goal_type} goals, success < "
             f"{summary['threshold']:g} m, {summary['eval_s']:.0f} s)")
    print(format_metrics_table(summary, title))
    if args.out:
        print(f"written {args.out}")
    return 0


def _add_nav_eval(sub) -> None:
    from worldsim.agents.nav.evaluation import PLANNERS

    p = sub.add_parser("nav-eval", help="navigate seeded episodes with a planner; print SR, SPL, "
                                        "NE, OSR, TL, nDTW, SDTW",
                       description="Roll a navigator out on episodes SEED..SEED+N-1 of a split and "
                                   "report the navigation metrics (rates as fractions in the JSON).")
    p.add_argument("--planner", required=True, metavar="NAME", help=", ".join(PLANNERS))
    p.add_argument("--split", default="val_unseen", metavar="SPLIT",
                   help="train, val_seen, val_unseen or test (default: val_unseen)")
    p.add_argument("--episodes", type=_positive_int, default=200, metavar="N")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="first episode seed")
    p.add_argument("--scorer", default=None, metavar="WORKDIR",
                   help="trained instruction–path scorer (ground_truth, baseline, world_model)")
    p.add_argument("--world-model", default=None, metavar="WORKDIR",
                   help="trained world model (the world_model planner)")
    p.add_argument("--world-model-latent", default="sample", choices=("sample", "mean"),
                   help="world_model planner: predict with one latent sample per episode step, or "
                        "the prior mean (default: sample)")
    p.add_argument("--horizon", type=_positive_int, default=3, metavar="K",
                   help="look-ahead depth in viewpoints (default: 3)")
    p.add_argument("--goal-type", default="instruction", metavar="TYPE",
                   help="instruction, object or point (default: instruction)")
    p.add_argument("--out", default=None, metavar="FILE", help="write the results JSON here")
    p.set_defaults(handler=cmd_nav_eval)


# --- parser -----------------------------------------------------------------------------------

def _add_collect(sub) -> None:
    from worldsim.data.collect import OBS_MODES, POLICIES

    p = sub.add_parser("collect", help="record oracle or random episodes of an env as a dataset",
                       description="Record episodes of an environment as a Minari dataset "
                                   "(episode i is reset with seed SEED+i).")
    p.add_argument("--env", required=True, metavar="ID", help="env id, e.g. worldsim/BlockPush-v0")
    p.add_argument("--policy", choices=POLICIES, default="oracle", help="default: oracle")
    p.add_argument("--episodes", type=_positive_int, required=True, metavar="N")
    p.add_argument("--num-envs", type=_positive_int, default=1, metavar="K",
                   help="parallel env processes (default: 1)")
    p.add_argument("--out", required=True, metavar="DIR", help="dataset folder to create")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset at DIR")
    p.add_argument("--obs-mode", choices=OBS_MODES, default=None,
                   help="block and particle envs only (default: state)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="first episode seed (default: 0)")
    p.add_argument("--env-kwargs", type=_json_object, default=None, metavar="JSON",
                   help='constructor arguments, e.g. \'{"goal_tolerance": 0.01}\'')
    p.add_argument("--noise-std", type=_non_negative_float, default=0.0, metavar="X",
                   help="Gaussian noise on oracle actions, action units (default: 0); the "
                        "noise-free actions are kept as infos/oracle_clean_action")
    p.add_argument("--oracle-options", type=_json_object, default=None, metavar="JSON",
                   help='oracle constructor options, e.g. \'{"via_home": false}\' for BlockSort')
    p.set_defaults(handler=cmd_collect)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="worldsim", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    envs = sub.add_parser("envs", help="list the registered envs: observation keys, action space, "
                                       "step limit")
    envs.add_argument("--snapshots", metavar="DIR", default=None,
                      help="also write a PNG of each env after its seed-0 reset into DIR")
    envs.set_defaults(handler=cmd_envs)
    _add_collect(sub)
    train = sub.add_parser(
        "train", help="train an agent on a dataset from a config file",
        description="Train from a Python config (get_config()); re-running on the same workdir "
                    "resumes. Override any key: --config.train.steps=5000",
        epilog="example:\n  worldsim train --config configs/ibc/blockpush_dfo.py "
               "--workdir runs/blockpush_dfo --config.train.steps=5000",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--config", required=True, metavar="PATH")
    train.add_argument("--workdir", required=True, metavar="DIR")
    train.set_defaults(handler=cmd_train)
    evaluate = sub.add_parser("eval",
                              help="evaluate a trained agent: success rate, rewards, videos")
    evaluate.add_argument("--workdir", required=True, metavar="DIR")
    evaluate.add_argument("--episodes", type=_positive_int, default=100, metavar="N")
    evaluate.add_argument("--num-envs", type=_positive_int, default=2, metavar="K")
    evaluate.add_argument("--videos", type=int, default=3, metavar="V",
                          help="episodes to film into WORKDIR/videos (default: 3)")
    evaluate.add_argument("--out", metavar="DIR", help="world models: where the results go "
                          "(default: WORKDIR/eval_worldmodel)")
    evaluate.add_argument("--occlusion-window", type=int, metavar="K",
                          help="world models: occlusion filter window of the guidance, odd, ≤ 1 = "
                               "off (default: the run's config.guidance)")
    evaluate.add_argument("--occlusion-tolerance", type=float, metavar="T",
                          help="world models: the filter's relative depth tolerance")
    evaluate.set_defaults(handler=cmd_eval)
    demo = sub.add_parser("demo", help="collect BlockPush demos, train implicit and explicit BC, "
                                       "evaluate both (what `make demo` runs)")
    demo.add_argument("--out", default="runs/demo", metavar="DIR", help="default: runs/demo")
    demo.add_argument("--episodes", type=_positive_int, default=1000, metavar="N",
                      help="oracle demonstrations to collect (default: 1000)")
    demo.add_argument("--num-envs", type=_positive_int, default=2, metavar="K")
    demo.add_argument("--eval-episodes", type=_positive_int, default=50, metavar="E")
    demo.add_argument("--videos", type=int, default=2, metavar="V", help="episodes to film")
    demo.add_argument("--steps-scale", type=float, default=1.0, metavar="S",
                      help="multiply the training steps (e.g. 0.1 for a smoke run)")
    demo.set_defaults(handler=cmd_demo)
    _add_show_house(sub)
    _add_nav_eval(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the ``worldsim`` command line; returns the exit status."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    args.overrides = [u for u in unknown if u.startswith("--config.")]
    rest = [u for u in unknown if not u.startswith("--config.")]
    if rest or (args.overrides and args.command != "train"):
        parser.error(f"unrecognized arguments: {' '.join(rest or args.overrides)}")
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("worldsim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
