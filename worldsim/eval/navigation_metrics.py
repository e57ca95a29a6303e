"""Navigation metrics on a navigation graph: NE, SR, OSR, TL, SPL, nDTW, SDTW and CLS.

Everything works on a ``networkx`` graph whose edge attribute ``weight`` is a length in metres
(a missing weight counts as 1.0) and on paths given as lists of node ids. ``d(a, b)`` is the
shortest-path (Dijkstra) distance on that graph; pass the mapping returned by
:func:`shortest_distances` as ``distances=`` to avoid recomputing it for every call.

Notation: agent path P = (p_0 ... p_n), reference path R = (r_0 ... r_m), goal g = r_m,
start s = r_0 = p_0, success threshold d_th (3.0 m for R2R-style VLN).

- NE   = d(p_n, g)                                     (metres)
- SR   = 1[NE < d_th]                                  (strict, as R2R ``error_margin``)
- OSR  = 1[min_k d(p_k, g) < d_th]                     (strict)
- TL   = sum of edge weights between consecutive *distinct* nodes of P (metres); a repeated node
  (a heading-only change) adds 0 and a move without a graph edge raises ``ValueError``.
- SPL  = SR * l / max(L, l) with l = d(s, g) and L = TL  (l == 0 raises ``ValueError``)
- DTW  = dynamic-time-warping cost of P against R with cost d(p_i, r_j)
- nDTW = exp(-DTW / (|R| * d_th))
- SDTW = 1[d(p_n, r_m) <= d_th] * nDTW                  (inclusive, as ``r4r/dtw.py``)
- CLS  = PC * LS, path coverage PC = mean_{r in R} exp(-min_{p in P} d(r, p) / d_th),
  expected length EPL = PC * PL(R), length score LS = EPL / (EPL + |EPL - PL(P)|).

Strict vs inclusive: SR, OSR and SPL count a success only when the distance is strictly below
the threshold (``<``), while SDTW uses ``<=``; an agent stopping exactly d_th away therefore gets
SR 0 but a non-zero SDTW. This keeps parity with the reference code (R2R evaluator, ``r4r``).

For nDTW, SDTW and CLS consecutive repeats of a node (turning in place) are collapsed first, so a
heading-only change neither adds alignment cost nor breaks the path-length sum.

Rates are fractions in [0, 1]; only :func:`format_metrics_table` prints percentages.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from numbers import Real

import networkx as nx

__all__ = [
    "shortest_distances",
    "navigation_error",
    "success",
    "oracle_success",
    "trajectory_length",
    "spl",
    "dtw",
    "ndtw",
    "sdtw",
    "cls",
    "episode_metrics",
    "aggregate_metrics",
    "format_metrics_table",
]

Distances = Mapping[Hashable, Mapping[Hashable, float]]

METRIC_KEYS = ("ne", "sr", "osr", "tl", "spl", "ndtw", "sdtw", "cls")


# --------------------------------------------------------------------------- helpers


def _check_threshold(threshold) -> float:
    """Return ``threshold`` as a float; ``ValueError`` unless it is a finite number > 0."""
    if (isinstance(threshold, bool) or not isinstance(threshold, Real)
            or not math.isfinite(threshold) or threshold <= 0):
        raise ValueError(f"threshold must be a finite number > 0, got {threshold!r}")
    return float(threshold)


def _check_path(graph: nx.Graph, path: Sequence, name: str = "path") -> list:
    """Return ``path`` as a list; ``ValueError`` if it is empty or holds a node not in ``graph``."""
    nodes = list(path)
    if not nodes:
        raise ValueError(f"{name} is empty")
    for node in nodes:
        _check_node(graph, node)
    return nodes


def _check_node(graph: nx.Graph, node) -> None:
    try:
        known = node in graph
    except TypeError:  # unhashable
        known = False
    if not known:
        raise ValueError(f"unknown node {node!r}: not in the navigation graph")


def _resolve(graph: nx.Graph, distances: Distances | None) -> Distances:
    return shortest_distances(graph) if distances is None else distances


def _dist(distances: Distances, a, b) -> float:
    """d(a, b) from the precomputed mapping; ``inf`` when b is unreachable from a."""
    try:
        row = distances[a]
    except KeyError:
        raise ValueError(f"distances mapping has no entry for node {a!r}") from None
    return float(row.get(b, math.inf))


def _collapse(nodes: list) -> list:
    """Drop consecutive repeats of a node (heading-only changes)."""
    out = [nodes[0]]
    for node in nodes[1:]:
        if node != out[-1]:
            out.append(node)
    return out


# --------------------------------------------------------------------------- metrics


def shortest_distances(graph: nx.Graph) -> dict:
    """All-pairs Dijkstra distances (metres) on edge attribute ``weight``: ``d[a][b]``.

    Unreachable pairs are absent from the mapping; the metrics treat them as ``inf``.
    """
    return dict(nx.all_pairs_dijkstra_path_length(graph, weight="weight"))


def navigation_error(graph: nx.Graph, path: Sequence, goal, distances: Distances | None = None
                     ) -> float:
    """NE: shortest-path distance (metres) from the last node of ``path`` to ``goal``."""
    nodes = _check_path(graph, path)
    _check_node(graph, goal)
    return _dist(_resolve(graph, distances), nodes[-1], goal)


def success(graph: nx.Graph, path: Sequence, goal, threshold: float = 3.0,
            distances: Distances | None = None) -> bool:
    """SR for one episode: NE < ``threshold`` (metres, strict ``<``)."""
    threshold = _check_threshold(threshold)
    return navigation_error(graph, path, goal, distances) < threshold


def oracle_success(graph: nx.Graph, path: Sequence, goal, threshold: float = 3.0,
                   distances: Distances | None = None) -> bool:
    """OSR for one episode: some node of ``path`` lies < ``threshold`` metres from ``goal``."""
    threshold = _check_threshold(threshold)
    nodes = _check_path(graph, path)
    _check_node(graph, goal)
    distances = _resolve(graph, distances)
    return min(_dist(distances, node, goal) for node in nodes) < threshold


def trajectory_length(graph: nx.Graph, path: Sequence) -> float:
    """TL: sum of edge weights (metres) between consecutive distinct nodes of ``path``.

    A repeated node (heading-only change) adds 0; a move between two nodes that share no graph
    edge raises ``ValueError`` naming both nodes. A missing ``weight`` counts as 1.0.
    """
    nodes = _check_path(graph, path)
    total = 0.0
    for prev, curr in zip(nodes[:-1], nodes[1:]):
        if prev == curr:
            continue
        if not graph.has_edge(prev, curr):
            raise ValueError(f"path moves from {prev!r} to {curr!r} but the navigation graph has "
                             f"no edge between these nodes")
        total += float(graph.edges[prev, curr].get("weight", 1.0))
    return total


def spl(graph: nx.Graph, path: Sequence, goal, threshold: float = 3.0,
        distances: Distances | None = None) -> float:
    """SPL for one episode: S * l / max(L, l), a fraction in [0, 1].

    S = :func:`success` (strict ``<``), l = d(path[0], goal) in metres and
    L = :func:`trajectory_length` in metres.
    Raises ``ValueError`` if l is 0 (start at goal) or infinite (goal unreachable).
    """
    threshold = _check_threshold(threshold)
    nodes = _check_path(graph, path)
    _check_node(graph, goal)
    distances = _resolve(graph, distances)
    shortest = _dist(distances, nodes[0], goal)
    if shortest == 0:
        raise ValueError(f"SPL is undefined: start {nodes[0]!r} is the goal (shortest distance 0)")
    if not math.isfinite(shortest):
        raise ValueError(f"SPL is undefined: goal {goal!r} is unreachable from {nodes[0]!r}")
    if not success(graph, nodes, goal, threshold, distances):
        return 0.0
    length = trajectory_length(graph, nodes)
    return shortest / max(length, shortest)


def dtw(graph: nx.Graph, prediction: Sequence, reference: Sequence,
        distances: Distances | None = None) -> float:
    """DTW cost (metres) aligning ``prediction`` to ``reference`` with cost d(p_i, r_j).

    D[0][0] = 0, D[i][0] = D[0][j] = inf, D[i][j] = d(p_i, r_j) + min(D[i-1][j], D[i][j-1],
    D[i-1][j-1]); returns D[|P|][|R|]. Consecutive repeated nodes are collapsed first.
    """
    pred = _collapse(_check_path(graph, prediction, "prediction"))
    ref = _collapse(_check_path(graph, reference, "reference"))
    distances = _resolve(graph, distances)
    previous = [0.0] + [math.inf] * len(ref)
    for p in pred:
        current = [math.inf] * (len(ref) + 1)
        for j, r in enumerate(ref, start=1):
            best = min(previous[j], current[j - 1], previous[j - 1])
            current[j] = _dist(distances, p, r) + best
        previous = current
    return previous[-1]


def ndtw(graph: nx.Graph, prediction: Sequence, reference: Sequence, threshold: float = 3.0,
         distances: Distances | None = None) -> float:
    """nDTW = exp(-DTW / (|R| * threshold)), a fraction in [0, 1]; ``threshold`` in metres."""
    threshold = _check_threshold(threshold)
    ref = _collapse(_check_path(graph, reference, "reference"))
    cost = dtw(graph, prediction, ref, distances)
    return math.exp(-cost / (len(ref) * threshold))


def sdtw(graph: nx.Graph, prediction: Sequence, reference: Sequence, threshold: float = 3.0,
         distances: Distances | None = None) -> float:
    """SDTW = 1[d(p_n, r_m) <= threshold] * nDTW (inclusive ``<=``), a fraction in [0, 1]."""
    threshold = _check_threshold(threshold)
    pred = _check_path(graph, prediction, "prediction")
    ref = _check_path(graph, reference, "reference")
    distances = _resolve(graph, distances)
    if _dist(distances, pred[-1], ref[-1]) > threshold:
        return 0.0
    return ndtw(graph, pred, ref, threshold, distances)


def cls(graph: nx.Graph, *, prediction: Sequence, reference: Sequence, threshold: float = 3.0,
        distances: Distances | None = None) -> float:
    """CLS = PC * LS (coverage weighted by length score), a fraction in [0, 1].

    PC = mean over reference nodes r of exp(-min_p d(r, p) / threshold) (threshold in metres);
    EPL = PC * PL(reference); LS = EPL / (EPL + |EPL - PL(prediction)|), with PL the summed edge
    weights (:func:`trajectory_length`). ``prediction`` and ``reference`` are keyword-only because
    the metric is not symmetric. If EPL and PL(prediction) are both 0, LS is taken as 1.
    """
    threshold = _check_threshold(threshold)
    pred = _collapse(_check_path(graph, prediction, "prediction"))
    ref = _collapse(_check_path(graph, reference, "reference"))
    distances = _resolve(graph, distances)
    coverage = sum(math.exp(-min(_dist(distances, r, p) for p in pred) / threshold)
                   for r in ref) / len(ref)
    expected = coverage * trajectory_length(graph, ref)
    denominator = expected + abs(expected - trajectory_length(graph, pred))
    length_score = 1.0 if denominator == 0 else expected / denominator
    return coverage * length_score


# --------------------------------------------------------------------------- episodes


def episode_metrics(graph: nx.Graph, path: Sequence, reference_path: Sequence,
                    threshold: float = 3.0, distances: Distances | None = None) -> dict:
    """All metrics of one episode as floats: ``ne``/``tl`` in metres, the others in [0, 1].

    goal = ``reference_path[-1]``, start = ``reference_path[0]``; ``path`` must start at the
    reference start (``ValueError`` otherwise). ``sr``/``osr`` are 0.0 or 1.0.
    """
    threshold = _check_threshold(threshold)
    nodes = _check_path(graph, path)
    ref = _check_path(graph, reference_path, "reference_path")
    if nodes[0] != ref[0]:
        raise ValueError(f"path starts at {nodes[0]!r} but the reference path starts at {ref[0]!r}")
    distances = _resolve(graph, distances)
    goal = ref[-1]
    return {
        "ne": navigation_error(graph, nodes, goal, distances),
        "sr": float(success(graph, nodes, goal, threshold, distances)),
        "osr": float(oracle_success(graph, nodes, goal, threshold, distances)),
        "tl": trajectory_length(graph, nodes),
        "spl": spl(graph, nodes, goal, threshold, distances),
        "ndtw": ndtw(graph, nodes, ref, threshold, distances),
        "sdtw": sdtw(graph, nodes, ref, threshold, distances),
        "cls": cls(graph, prediction=nodes, reference=ref, threshold=threshold,
                   distances=distances),
    }


def aggregate_metrics(rows: Sequence[Mapping]) -> dict:
    """Mean over episodes of every numeric key of the rows (same units), plus ``n_episodes``.

    Keys whose values are not numbers (e.g. an episode id) are skipped. Raises ``ValueError`` on
    an empty list or when a row lacks a key of the first row.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("aggregate_metrics needs at least one episode row, got none")
    summary: dict = {}
    for key in rows[0]:
        values = []
        for i, row in enumerate(rows):
            if key not in row:
                raise ValueError(f"episode row {i} has no key {key!r}")
            values.append(row[key])
        if all(isinstance(v, Real) for v in values):
            summary[key] = float(sum(float(v) for v in values) / len(values))
    summary["n_episodes"] = len(rows)
    return summary


_TABLE_COLUMNS = (
    # (header, summary key, scale, format)
    ("SR(%)", "sr", 100.0, "{:.1f}"),
    ("SPL(%)", "spl", 100.0, "{:.1f}"),
    ("NE(m)", "ne", 1.0, "{:.2f}"),
    ("OSR(%)", "osr", 100.0, "{:.1f}"),
    ("TL(m)", "tl", 1.0, "{:.2f}"),
    ("nDTW(%)", "ndtw", 100.0, "{:.1f}"),
    ("SDTW(%)", "sdtw", 100.0, "{:.1f}"),
)


def format_metrics_table(summary: Mapping, title: str) -> str:
    """A printable table of SR, SPL, NE, OSR, TL, nDTW, SDTW from an aggregated ``summary``.

    Rates are printed as percentages with 1 decimal, NE and TL in metres with 2 decimals; a
    missing key prints ``-``. The title line adds ``n_episodes`` when the summary has it.
    """
    headers, cells = [], []
    for header, key, scale, fmt in _TABLE_COLUMNS:
        value = summary.get(key)
        headers.append(header)
        cells.append("-" if value is None else fmt.format(float(value) * scale))
    widths = [max(len(h), len(c)) for h, c in zip(headers, cells)]
    heading = title if "n_episodes" not in summary else f"{title} (n={summary['n_episodes']})"
    header_line = "  ".join(h.rjust(w) for h, w in zip(headers, widths))
    value_line = "  ".join(c.rjust(w) for c, w in zip(cells, widths))
    return "\n".join([heading, header_line, "-" * len(header_line), value_line])
