"""Evaluation: policy roll-outs and videos (rollout, video, plots) and navigation metrics.

The navigation metrics are public here: ``from worldsim.eval import ndtw, sdtw, spl``.
"""

from worldsim.eval.navigation_metrics import (
    aggregate_metrics, cls, dtw, episode_metrics, format_metrics_table, navigation_error, ndtw,
    oracle_success, sdtw, shortest_distances, spl, success, trajectory_length,
)

__all__ = [
    "aggregate_metrics", "cls", "dtw", "episode_metrics", "format_metrics_table",
    "navigation_error", "ndtw", "oracle_success", "sdtw", "shortest_distances", "spl", "success",
    "trajectory_length",
]
