"""Orbax checkpoints of a run: the model and optimiser state plus a JSON sidecar.

``workdir/checkpoints/<step>/`` holds ``state`` (the pure-dict pytree of the NNX state of the
model and optimiser) and ``meta`` (JSON: step, config, normalisation, anything the agent needs
to act). Orbax writes each step to a temporary name and renames it when complete, so an
interrupted save never shadows the previous checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

CHECKPOINT_DIR = "checkpoints"


class Checkpointer:
    """Saves and restores ``(state_pytree, meta)`` pairs under ``workdir/checkpoints``."""

    def __init__(self, workdir: str | Path, max_to_keep: int = 2) -> None:
        self.directory = (Path(workdir) / CHECKPOINT_DIR).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options,
                                             item_names=("state", "meta"))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        meta=ocp.args.JsonSave(meta)))
        self.manager.wait_until_finished()

    def restore_meta(self, step: int | None = None) -> dict[str, Any]:
        step = self.latest_step() if step is None else step
        restored = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(restored["meta"])

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
        """(state, meta) of ``step`` (default: latest); ``abstract_state`` gives the structure."""
        step = self.latest_step() if step is None else step
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
        return restored["state"], dict(restored["meta"])

    def close(self) -> None:
        self.manager.close()


def has_checkpoint(workdir: str | Path) -> bool:
    directory = Path(workdir) / CHECKPOINT_DIR
    return directory.is_dir() and any(p.name.isdigit() for p in directory.iterdir())
