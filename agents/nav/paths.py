"""Paths on a navigation graph: their geometry features, look-ahead candidates and the
counter-examples the scorer is trained against."""

from __future__ import annotations

import networkx as nx
import numpy as np

from worldsim.envs.navigation.scene import HouseScene


def path_geometry(positions: np.ndarray) -> np.ndarray:
    """(P, 3) features of a path's viewpoints at ``positions`` (P, 3) metres: for the move
    into each viewpoint, the turn relative to the previous move as (sin, cos) and the step
    length / 2 m. The first viewpoint and the first move have no turn (sin 0, cos 1)."""
    features = np.zeros((len(positions), 3), np.float32)
    features[:, 1] = 1.0
    previous = None
    for i in range(1, len(positions)):
        move = positions[i, :2] - positions[i - 1, :2]
        heading = np.arctan2(move[1], move[0])
        if previous is not None:
            features[i, 0], features[i, 1] = np.sin(heading - previous), np.cos(heading - previous)
        features[i, 2] = np.linalg.norm(move) / 2.0
        previous = heading
    return features


def extensions(graph: nx.Graph, path: list[int], depth: int) -> list[list[int]]:
    """Every simple continuation of ``path`` by 1..``depth`` viewpoints not already on it."""
    found, frontier = [], [list(path)]
    visited = set(path)
    for _ in range(depth):
        grown = []
        for candidate in frontier:
            for neighbor in sorted(graph.neighbors(candidate[-1])):
                if neighbor not in visited and neighbor not in candidate:
                    grown.append(candidate + [neighbor])
        found += grown
        frontier = grown
    return found


def random_walk(graph: nx.Graph, start_path: list[int], steps: int, rng) -> list[int]:
    """``start_path`` grown by up to ``steps`` random moves to unvisited viewpoints."""
    path = list(start_path)
    for _ in range(steps):
        options = [n for n in sorted(graph.neighbors(path[-1])) if n not in path]
        if not options:
            break
        path.append(int(options[rng.integers(len(options))]))
    return path


def full_path_negatives(scene: HouseScene, path: list[int], rng, count: int) -> list[list[int]]:
    """Paths from the same start that do not follow ``path`` to its end: its prefixes, its
    overshoots, and paths that branch off towards other viewpoints."""
    graph = scene.graph
    found: list[list[int]] = []
    def add(candidate):
        if len(candidate) >= 2 and candidate != path and candidate not in found:
            found.append(candidate)
    for cut in (1, 2):
        if len(path) - cut >= 2:
            add(path[:-cut])
    add(random_walk(graph, path, 1, rng))
    add(random_walk(graph, path, 2, rng))
    goal_distance = scene.distances[path[0]][path[-1]]
    others = [n for n in graph.nodes if scene.distances[path[-1]][n] > 3.0
              and abs(scene.distances[path[0]][n] - goal_distance) < 3.0]
    rng.shuffle(others)
    for node in others[: 2 * count]:
        add(nx.shortest_path(graph, path[0], node, weight="weight"))
        if len(found) >= count:
            break
    for _ in range(4 * count):
        if len(found) >= count:
            break
        add(random_walk(graph, path[:1], len(path) - 1, rng))
    return found[:count]


def prefix_negatives(scene: HouseScene, prefix: list[int], rng, count: int) -> list[list[int]]:
    """Paths of about the same length as ``prefix`` (a correct partial path) that leave it:
    the shorter prefix and walks that branch off at some viewpoint."""
    graph = scene.graph
    found: list[list[int]] = []
    if len(prefix) > 2:
        found.append(prefix[:-1])
    for _ in range(6 * count):
        if len(found) >= count:
            break
        branch_at = int(rng.integers(1, len(prefix)))
        walk = random_walk(graph, prefix[:branch_at], len(prefix) - branch_at, rng)
        if len(walk) >= 2 and walk != prefix[: len(walk)] and walk not in found:
            found.append(walk)
    return found[:count]
