"""Metrics of a run: one JSON object per logged step, appended to ``workdir/metrics.jsonl``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

METRICS_FILE = "metrics.jsonl"


def to_python(value: Any) -> Any:
    """Scalars of numpy/JAX arrays as Python numbers (for JSON)."""
    if hasattr(value, "item") and np.ndim(value) == 0:
        return value.item()
    if isinstance(value, dict):
        return {k: to_python(v) for k, v in value.items()}
    return value


class MetricsWriter:
    """Appends ``{"step": s, **metrics}`` lines; safe to reopen when a run resumes."""

    def __init__(self, workdir: str | Path) -> None:
        self.path = Path(workdir) / METRICS_FILE

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"step": int(step), **to_python(metrics)}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drops rows logged after ``step`` (a resumed run re-logs them)."""
        rows = [r for r in read_metrics(self.path.parent) if r["step"] <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def read_metrics(workdir: str | Path) -> list[dict[str, Any]]:
    """Every row of ``workdir/metrics.jsonl`` (empty if there is none)."""
    path = Path(workdir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def first_non_finite(metrics: dict[str, Any]) -> str | None:
    """The name of the first metric that is NaN or infinite, else None."""
    for name, value in metrics.items():
        if isinstance(value, (int, float)) and not math.isfinite(value):
            return name
    return None
