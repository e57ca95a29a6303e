"""Tests for worldsim.eval.navigation_metrics (worked examples from the r4r / R2R reference)."""

from __future__ import annotations

import math
import random
import re

import networkx as nx
import pytest

from worldsim.eval.navigation_metrics import (
    aggregate_metrics,
    cls,
    dtw,
    episode_metrics,
    format_metrics_table,
    navigation_error,
    ndtw,
    oracle_success,
    sdtw,
    shortest_distances,
    spl,
    success,
    trajectory_length,
)


@pytest.fixture(scope="module")
def grid():
    """``grid_graph([3, 4])``: nodes (x, y), x in 0..3, y in 0..2, unit edge weights."""
    graph = nx.grid_graph([3, 4])
    for u, v in graph.edges:
        graph.edges[u, v]["weight"] = 1.0
    return graph


@pytest.fixture(scope="module")
def grid_distances(grid):
    return shortest_distances(grid)


A = [(0, 0), (1, 0), (1, 1), (2, 1), (2, 2), (3, 2)]
B = [(0, 0), (0, 1), (1, 1), (2, 1), (3, 1), (3, 2)]
C = [(0, 1), (1, 1), (2, 1), (3, 1)]


def line_graph(weights):
    """Path graph 0-1-2-... with the given edge weights."""
    graph = nx.Graph()
    for i, w in enumerate(weights):
        graph.add_edge(i, i + 1, weight=float(w))
    return graph


# ----------------------------------------------------------------------------- nDTW / SDTW


def test_grid_node_layout(grid):
    assert len(grid) == 12
    assert (3, 2) in grid and (2, 3) not in grid


def test_ndtw_sdtw_worked_example(grid, grid_distances):
    prediction = [(0, 0), (1, 0), (2, 0), (3, 0)]
    reference = [(0, 0), (1, 0), (2, 1), (3, 2)]
    assert dtw(grid, prediction, reference, grid_distances) == pytest.approx(3.0)
    assert ndtw(grid, prediction, reference) == pytest.approx(0.7788007830714049, abs=1e-12)
    assert ndtw(grid, prediction, reference, distances=grid_distances) == pytest.approx(
        math.exp(-0.25), abs=1e-12)
    assert sdtw(grid, prediction, reference, distances=grid_distances) == pytest.approx(
        0.7788007830714049, abs=1e-12)


def test_sdtw_prefix_fails(grid, grid_distances):
    prediction = [(0, 0), (1, 0)]
    reference = [(0, 0), (1, 0), (2, 1), (3, 2)]
    assert dtw(grid, prediction, reference, grid_distances) == pytest.approx(6.0)
    assert ndtw(grid, prediction, reference, distances=grid_distances) == pytest.approx(
        math.exp(-0.5), abs=1e-12)
    assert sdtw(grid, prediction, reference, distances=grid_distances) == 0.0


def test_ndtw_ignores_heading_only_repeats(grid, grid_distances):
    reference = [(0, 0), (1, 0), (2, 1), (3, 2)]
    plain = [(0, 0), (1, 0), (2, 0), (3, 0)]
    repeated = [(0, 0), (0, 0), (1, 0), (2, 0), (2, 0), (3, 0)]
    assert ndtw(grid, repeated, reference, distances=grid_distances) == pytest.approx(
        ndtw(grid, plain, reference, distances=grid_distances))


# ----------------------------------------------------------------------------- CLS


def test_cls_worked_examples(grid, grid_distances):
    def score(prediction, reference):
        return cls(grid, prediction=prediction, reference=reference, distances=grid_distances)

    assert score(A, A) == pytest.approx(1.0, abs=1e-12)
    assert score(A, B) == pytest.approx(0.8199491512586387, abs=1e-12)
    assert score(B, A) == pytest.approx(0.8199491512586387, abs=1e-12)
    assert score(A, C) == pytest.approx(0.4419719610270256, abs=1e-12)  # prediction=A, ref=C
    assert score(C, A) == pytest.approx(0.6435694620652272, abs=1e-12)


def test_cls_arguments_are_keyword_only(grid):
    with pytest.raises(TypeError):
        cls(grid, A, C)  # rules out the argument-order confusion of the r4r doctest


# ----------------------------------------------------------------------------- NE / SR / OSR


def test_sr_boundary_strict_but_sdtw_inclusive():
    graph = line_graph([1.5, 1.5, 1.5])  # 0 - 1 - 2 - 3, goal 2 is 3.0 m from start 0
    distances = shortest_distances(graph)
    path, reference = [0], [0, 1, 2]
    assert navigation_error(graph, path, 2, distances) == pytest.approx(3.0)
    assert success(graph, path, 2, distances=distances) is False
    assert oracle_success(graph, path, 2, distances=distances) is False
    assert sdtw(graph, path, reference, distances=distances) > 0.0  # d = 3.0 <= 3.0
    row = episode_metrics(graph, path, reference, distances=distances)
    assert row["ne"] == pytest.approx(3.0)
    assert row["sr"] == 0.0 and row["osr"] == 0.0 and row["spl"] == 0.0
    assert row["sdtw"] == pytest.approx(row["ndtw"]) and row["sdtw"] > 0.0


def test_oracle_success_uses_closest_path_node():
    graph = line_graph([1.0] * 6)  # 0 .. 6
    path = [0, 1, 2, 3, 4, 5, 4, 3, 2, 1]  # passes the goal, ends 5 m away
    assert navigation_error(graph, path, 6) == pytest.approx(5.0)
    assert success(graph, path, 6) is False
    assert oracle_success(graph, path, 6) is True
    assert oracle_success(graph, path[:4], 6) is False  # closest is node 3, exactly 3.0 away


# ----------------------------------------------------------------------------- TL / SPL


def test_trajectory_length_repeated_node_adds_zero():
    graph = line_graph([2.0, 0.5])
    assert trajectory_length(graph, [0, 1, 2]) == pytest.approx(2.5)
    assert trajectory_length(graph, [0, 0, 1, 1, 1, 2, 2]) == pytest.approx(2.5)
    assert trajectory_length(graph, [1]) == 0.0


def test_trajectory_length_raises_on_non_edge_move():
    graph = line_graph([1.0, 1.0])
    with pytest.raises(ValueError, match=r"from 0 to 2"):
        trajectory_length(graph, [0, 2])


def test_spl_hand_made_cases():
    # Square 0-1-2-3-0 plus a tail 2-4; the goal 4 is 3.0 m from start 0 via 0-1-2-4.
    graph = nx.Graph()
    graph.add_edge(0, 1, weight=1.0)
    graph.add_edge(1, 2, weight=1.0)
    graph.add_edge(2, 3, weight=2.0)
    graph.add_edge(3, 0, weight=2.0)
    graph.add_edge(2, 4, weight=1.0)
    distances = shortest_distances(graph)
    # Shortest path, reaching the goal: SPL 1.
    assert spl(graph, [0, 1, 2, 4], 4, distances=distances) == pytest.approx(1.0)
    # Success with a detour (L = 2 + 2 + 1 = 5, l = 3): SPL = l / L.
    assert spl(graph, [0, 3, 2, 4], 4, distances=distances) == pytest.approx(3.0 / 5.0)
    # Failure (ends 3.0 m from the goal, strict <): SPL 0.
    assert spl(graph, [0, 3], 4, distances=distances) == 0.0
    assert spl(graph, [0], 4, distances=distances) == 0.0
    # Start at the goal: undefined.
    with pytest.raises(ValueError, match="shortest distance 0"):
        spl(graph, [4], 4, distances=distances)


def test_spl_never_exceeds_sr_on_random_paths(grid, grid_distances):
    rng = random.Random(0)
    nodes = sorted(grid.nodes)
    rows = []
    for _ in range(200):
        start = rng.choice(nodes)
        path = [start]
        for _ in range(rng.randint(0, 8)):
            path.append(rng.choice(sorted(grid.neighbors(path[-1]))))
        goal = rng.choice([n for n in nodes if n != start])
        reference = nx.shortest_path(grid, start, goal, weight="weight")
        for threshold in (1.0, 3.0):
            row = episode_metrics(grid, path, reference, threshold=threshold,
                                  distances=grid_distances)
            assert 0.0 <= row["spl"] <= row["sr"] <= row["osr"] <= 1.0
            assert 0.0 <= row["sdtw"] <= row["ndtw"] <= 1.0
            assert 0.0 <= row["cls"] <= 1.0
            rows.append(row)
    summary = aggregate_metrics(rows)
    assert summary["spl"] <= summary["sr"]


# ----------------------------------------------------------------------------- episodes


def test_episode_metrics_keys_and_values(grid, grid_distances):
    row = episode_metrics(grid, A, A, distances=grid_distances)
    assert set(row) == {"ne", "sr", "osr", "tl", "spl", "ndtw", "sdtw", "cls"}
    assert all(isinstance(v, float) for v in row.values())
    assert row == pytest.approx({"ne": 0.0, "sr": 1.0, "osr": 1.0, "tl": 5.0, "spl": 1.0,
                                 "ndtw": 1.0, "sdtw": 1.0, "cls": 1.0})
    assert episode_metrics(grid, A, A) == pytest.approx(row)  # distances computed internally


def test_episode_metrics_requires_reference_start(grid):
    with pytest.raises(ValueError, match=r"starts at \(0, 1\)"):
        episode_metrics(grid, C, A)


def test_aggregate_metrics_two_rows():
    rows = [
        {"ne": 1.0, "sr": 1.0, "osr": 1.0, "tl": 10.0, "spl": 0.8, "ndtw": 0.9, "sdtw": 0.9,
         "cls": 0.7},
        {"ne": 5.0, "sr": 0.0, "osr": 1.0, "tl": 6.0, "spl": 0.0, "ndtw": 0.5, "sdtw": 0.0,
         "cls": 0.3},
    ]
    summary = aggregate_metrics(rows)
    assert summary == pytest.approx({"ne": 3.0, "sr": 0.5, "osr": 1.0, "tl": 8.0, "spl": 0.4,
                                     "ndtw": 0.7, "sdtw": 0.45, "cls": 0.5, "n_episodes": 2})
    assert summary["n_episodes"] == 2
    with pytest.raises(ValueError):
        aggregate_metrics([])

    table = format_metrics_table(summary, "val_unseen")
    lines = table.splitlines()
    assert lines[0] == "val_unseen (n=2)"
    assert lines[1].split() == ["SR(%)", "SPL(%)", "NE(m)", "OSR(%)", "TL(m)", "nDTW(%)",
                                "SDTW(%)"]
    assert lines[3].split() == ["50.0", "40.0", "3.00", "100.0", "8.00", "70.0", "45.0"]


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, float("nan"), float("inf")])
def test_bad_threshold_is_named(grid, bad):
    with pytest.raises(ValueError, match=r"threshold must be .*> 0, got " + re.escape(repr(bad))):
        success(grid, A, (3, 2), threshold=bad)
    with pytest.raises(ValueError, match=r"got "):
        sdtw(grid, A, B, threshold=bad)
    with pytest.raises(ValueError, match=r"got "):
        episode_metrics(grid, A, B, threshold=bad)


def test_unknown_node_is_named(grid):
    with pytest.raises(ValueError, match=r"unknown node \(9, 9\)"):
        navigation_error(grid, A, (9, 9))
    with pytest.raises(ValueError, match=r"unknown node \(7, 0\)"):
        trajectory_length(grid, [(0, 0), (7, 0)])
    with pytest.raises(ValueError, match=r"unknown node 'x'"):
        cls(grid, prediction=A, reference=["x"])
