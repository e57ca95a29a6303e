"""worldsim agents: implicit BC (``ibc``), explicit baselines (``bc``), and loading trained ones.

    >>> policy = worldsim.agents.load("runs/blockpush_dfo")
    >>> action = policy.act(obs)
"""

from __future__ import annotations

from pathlib import Path

from worldsim.train.loop import restore_trained_model


def load(workdir: str | Path, step: int | None = None, seed: int = 0):
    """The policy of the run in ``workdir`` (latest checkpoint unless ``step``)."""
    from worldsim.agents.policy import Policy
    from worldsim.agents.training import build_model, make_env, make_predict

    model, meta, config = restore_trained_model(
        workdir, lambda config, meta: build_model(config, meta, config.seed), step)
    env = make_env(config)
    low, high = env.action_space.low, env.action_space.high
    env.close()
    return Policy(model, make_predict(config, meta), meta, config, low, high, seed)


__all__ = ["load"]
