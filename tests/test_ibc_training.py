"""Implicit BC end to end on the 2-D particle task: collect → train → load → act.

The fast test checks that a short run learns (InfoNCE falls, the positive wins more often) and
that the trained policy acts in the env. The slow one trains long enough to solve the task for
most seeds and compares with a uniformly random policy on the same held-out seeds.
"""

from __future__ import annotations

import functools

import gymnasium
import pytest

import worldsim.envs  # noqa: F401  (registers the ids)
from worldsim.agents import load
from worldsim.agents.training import make_train_task
from worldsim.configs.ibc.base import base_config
from worldsim.data import collect, read_metadata
from worldsim.eval.rollout import evaluate_policy
from worldsim.train.loop import train
from worldsim.train.metrics import read_metrics

ENV_ID = "worldsim/Particle-v0"
EVAL_SEED = 10_000  # evaluation episodes use seeds 10000.., the datasets 0..N-1


def _config(dataset, steps: int, **overrides):
    """DFO-IBC on the particle task, scaled down for a CPU test."""
    config = base_config(ENV_ID, str(dataset))
    config.data.batch_size = 128
    config.model.width, config.model.depth = 64, 2
    config.ibc.num_negatives, config.ibc.inference_samples = 64, 512
    config.train.learning_rate = 3e-3
    config.train.steps, config.train.log_every, config.train.checkpoint_every = steps, 25, steps
    config.train.microbatches = 1
    for key, value in overrides.items():
        section, name = key.split("__")
        config[section][name] = value
    return config


def test_short_training_lowers_the_loss_and_the_policy_acts(tmp_path):
    dataset = collect(ENV_ID, episodes=40, out=tmp_path / "particle", num_envs=1,
                      progress=False, overwrite=True)
    # Gradients accumulated over 4 slices of 16 examples (train.microbatches) on the way.
    config = _config(dataset, 200, data__batch_size=64, model__width=32, ibc__num_negatives=32,
                     ibc__inference_samples=128, train__microbatches=4)
    train(config, tmp_path / "run", make_train_task(config), progress=False)

    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == list(range(25, 201, 25))
    first, last = rows[0], rows[-1]
    # Chance level with 32 uniform negatives: loss log(33) ≈ 3.5, accuracy 1/33 ≈ 0.03.
    assert last["info_nce"] < 0.6 * first["info_nce"], (first, last)
    assert last["accuracy"] > first["accuracy"] + 0.2, (first, last)
    assert last["accuracy"] > 0.5

    policy = load(tmp_path / "run")
    env = gymnasium.make(ENV_ID)
    obs, _ = env.reset(seed=EVAL_SEED)
    policy.reset()
    for _ in range(5):
        action = policy.act(obs)
        assert action.shape == (2,) and env.action_space.contains(action)
        obs, *_ = env.step(action)


@pytest.mark.slow
def test_ibc_beats_a_random_policy_on_particle(tmp_path):
    """Measured on 2 shared CPU cores: IBC 65 % on seeds 10000-10039 after 3000 steps (77 s
    for the whole test), random 0 %."""
    episodes = 40
    dataset = collect(ENV_ID, episodes=200, out=tmp_path / "particle", num_envs=1,
                      progress=False, overwrite=True)
    config = _config(dataset, 3000)
    config.train.log_every = 250
    train(config, tmp_path / "run", make_train_task(config), progress=False)
    make_env = functools.partial(gymnasium.make, ENV_ID)
    info = evaluate_policy(load(tmp_path / "run"), make_env, episodes, num_envs=1,
                           first_seed=EVAL_SEED, progress=False)
    ibc = info["overall"]["pc_success"]

    # `worldsim collect --policy random` on the same seeds: its success rate is the baseline.
    random = collect(ENV_ID, episodes=episodes, out=tmp_path / "random", policy="random",
                     seed=EVAL_SEED, num_envs=1, progress=False, overwrite=True)
    random_pc = 100.0 * read_metadata(random)["worldsim"]["success_rate"]
    print(f"particle success over seeds {EVAL_SEED}..{EVAL_SEED + episodes - 1}: "
          f"IBC {ibc:.1f} %, random {random_pc:.1f} %")
    assert ibc >= random_pc + 30.0, (ibc, random_pc)
