"""Pictures of results: energy landscapes and learning curves (matplotlib, written as PNG)."""

from __future__ import annotations

import os
from pathlib import Path
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from worldsim.train.metrics import read_metrics  # noqa: E402


def _save(figure, path: str | Path) -> Path:
    """Writes the figure via a temporary name, then renames it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    figure.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(figure)
    os.replace(tmp, path)
    return path


def plot_energy_landscape(energies: np.ndarray, extent: tuple[float, float, float, float],
                          path: str | Path, marks: dict[str, tuple[float, float]] | None = None,
                          title: str = "energy E(o, a)", axis_labels=("dx (m)", "dy (m)")) -> Path:
    """Heat map of energies (H, W) over the action box ``extent`` = (x0, x1, y0, y1).

    ``marks`` are labelled points (e.g. the chosen and the demonstrated action).
    """
    figure, axes = plt.subplots(figsize=(5, 4.2))
    image = axes.imshow(energies, origin="lower", extent=extent, aspect="auto", cmap="viridis_r")
    figure.colorbar(image, ax=axes, label="energy (lower = preferred)")
    for (label, (x, y)), marker in zip((marks or {}).items(), "o*xs^"):
        axes.plot(x, y, marker, markersize=11, markeredgecolor="white", label=label)
    if marks:
        axes.legend(loc="upper right", fontsize=8)
    axes.set(xlabel=axis_labels[0], ylabel=axis_labels[1], title=title)
    return _save(figure, path)


def plot_learning_curves(workdirs: dict[str, str | Path], path: str | Path,
                         metric: str = "loss") -> Path:
    """``metric`` against step for each named run, from its metrics.jsonl."""
    figure, axes = plt.subplots(figsize=(6, 3.5))
    for name, workdir in workdirs.items():
        rows = [r for r in read_metrics(workdir) if metric in r]
        axes.plot([r["step"] for r in rows], [r[metric] for r in rows], label=name)
    axes.set(xlabel="training step", ylabel=metric, yscale="log")
    axes.legend()
    axes.grid(alpha=0.3)
    return _save(figure, path)
