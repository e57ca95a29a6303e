"""worldsim agents: implicit BC (``ibc``), explicit baselines (``bc``), and loading trained ones.

    >>> policy = worldsim.agents.load("runs/blockpush_dfo")
    >>> action = policy.act(obs)
"""

from __future__ import annotations

from pathlib import Path

import ml_collections
from flax import nnx

from worldsim.train.checkpoint import Checkpointer, has_checkpoint
from worldsim.train.loop import make_optimizer


def load(workdir: str | Path, step: int | None = None, seed: int = 0):
    """The policy of the run in ``workdir`` (latest checkpoint unless ``step``)."""
    from worldsim.agents.policy import Policy
    from worldsim.agents.training import build_model, make_env, make_predict

    workdir = Path(workdir)
    if not has_checkpoint(workdir):
        raise FileNotFoundError(
            f"{workdir} has no checkpoint (looked in {workdir / 'checkpoints'}); train first: "
            f"worldsim train --config CONFIG --workdir {workdir}")
    checkpointer = Checkpointer(workdir)
    try:
        meta = checkpointer.restore_meta(step)
        config = ml_collections.ConfigDict(meta["config"])
        model = build_model(config, meta, config.seed)
        optimizer = nnx.Optimizer(model, make_optimizer(config.train), wrt=nnx.Param)
        state = nnx.state((model, optimizer))
        restored, _ = checkpointer.restore(state.to_pure_dict(), step)
    finally:
        checkpointer.close()
    nnx.replace_by_pure_dict(state, restored)
    nnx.update((model, optimizer), state)
    env = make_env(config)
    low, high = env.action_space.low, env.action_space.high
    env.close()
    return Policy(model, make_predict(config, meta), meta, config, low, high, seed)


__all__ = ["load"]
