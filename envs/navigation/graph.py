"""The navigation graph of a house: viewpoints in free space and the moves between them.

* Free space: inside the house, with a disc of ``AGENT_RADIUS`` touching no wall, no furniture
  standing on the floor and no open door leaf (2-D footprints, exact at corners).
* Viewpoints: a pair on the axis of every door, one on each side, ``MIN_SPACING`` apart, so
  a straight edge crosses every doorway; then greedy Poisson-disk sampling of a 0.25 m grid
  of free points, room by room and most open first (largest clearance, jittered), keeping
  ``MIN_SPACING`` from every viewpoint already chosen. Door pairs of neighbouring doors may
  sit closer to each other than that (they merge below 0.5 m).
* Edges: between viewpoints at most ``EDGE_BOUND`` apart whose straight segment is walkable
  (free for a slightly thinner agent, sampled every 0.1 m) and who see each other at camera
  height (an Open3D ray test). Weights are Euclidean distances in metres, as in R2R.
* Only the largest connected component is kept, so every graph is connected.

Nodes are integers with attributes ``position`` ((x, y, z) of the camera, metres), ``room``
(room index) and ``room_kind``.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from worldsim.envs.navigation.house import House
from worldsim.envs.navigation.render import CAMERA_HEIGHT, HouseRenderer
from worldsim.envs.navigation.semantics import CLASS_IDS

AGENT_RADIUS = 0.3
EDGE_CLEARANCE = 0.2
MIN_SPACING = 1.6
EDGE_BOUND = 3.0
GRID_STEP = 0.25


def obstacle_rects(house: House) -> np.ndarray:
    """(K, 4) footprints (x_low, y_low, x_high, y_high) of everything standing on the floor:
    walls, furniture that reaches the floor and open door leaves."""
    standing = (CLASS_IDS["wall"], CLASS_IDS["door"])
    rects = [(*box.low[:2], *box.high[:2]) for box in house.boxes
             if box.semantic in standing and box.low[2] <= 0.0]
    rects += [(*item.low[:2], *item.high[:2]) for item in house.furniture if item.low[2] < 0.3]
    return np.array(rects, dtype=np.float64).reshape(-1, 4)


def free_space_mask(house: House, points: np.ndarray, radius: float = AGENT_RADIUS,
                    obstacles: np.ndarray | None = None) -> np.ndarray:
    """(N,) bool: whether a disc of ``radius`` at each (x, y) of ``points`` (N, 2) lies inside
    the house and touches no obstacle (``obstacle_rects(house)`` unless given)."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    x, y = points[:, 0], points[:, 1]
    free = np.zeros(len(points), bool)
    for room in house.rooms:
        free |= (x >= room.low[0]) & (x <= room.high[0]) & (y >= room.low[1]) & (y <= room.high[1])
    obstacles = obstacle_rects(house) if obstacles is None else obstacles
    return free & (_clearance(points, obstacles) > radius)


def _door_crossings(house: House) -> list[np.ndarray]:
    """Two viewpoints per door on its axis, one each side, so every door is crossed by a
    straight edge: on the hallway's centre line (or 0.9 m into a room) and at ``MIN_SPACING``
    in total from it on the other side."""
    hall = house.rooms[0]
    points = []
    for door in house.doors:
        normal = np.array([0.0, 1.0]) if door.along_x else np.array([1.0, 0.0])
        center = np.array(door.center)
        if door.rooms[0] == 0:
            first_offset = (hall.low[1] + hall.high[1]) / 2 - center[1]
        else:
            first_offset = -0.9
        second_offset = -np.sign(first_offset) * (MIN_SPACING - abs(first_offset))
        points += [center + first_offset * normal, center + second_offset * normal]
    return points


def _sample_viewpoints(house: House, rng: np.random.Generator, obstacles) -> np.ndarray:
    """Door crossings first (merging any two closer than 0.5 m), then the free grid points
    of every room, most open first, at least ``MIN_SPACING`` from every chosen viewpoint."""
    chosen: list[np.ndarray] = []
    for point in _door_crossings(house):
        near = [i for i, c in enumerate(chosen) if np.linalg.norm(c - point) < 0.5]
        if near:
            chosen[near[0]] = (chosen[near[0]] + point) / 2
        elif free_space_mask(house, point[None], EDGE_CLEARANCE, obstacles)[0]:
            chosen.append(point)
    for room in house.rooms:
        xs = np.arange(room.low[0], room.high[0], GRID_STEP) + GRID_STEP / 2
        ys = np.arange(room.low[1], room.high[1], GRID_STEP) + GRID_STEP / 2
        grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
        grid = grid[free_space_mask(house, grid, AGENT_RADIUS, obstacles)]
        clearance = _clearance(grid, obstacles) + rng.uniform(0.0, 0.3, len(grid))
        for point in grid[np.argsort(-clearance, kind="stable")]:
            if not chosen or np.min(np.linalg.norm(np.array(chosen) - point, axis=1)) >= MIN_SPACING:
                chosen.append(point)
    return np.array(chosen)


def _clearance(points: np.ndarray, obstacles: np.ndarray) -> np.ndarray:
    """(N,) distance from each point to the nearest obstacle footprint, metres."""
    x, y = points[:, 0:1], points[:, 1:2]
    dx = np.maximum(np.maximum(obstacles[None, :, 0] - x, 0.0), x - obstacles[None, :, 2])
    dy = np.maximum(np.maximum(obstacles[None, :, 1] - y, 0.0), y - obstacles[None, :, 3])
    return np.sqrt(dx * dx + dy * dy).min(axis=1)


def _walkable(house: House, a: np.ndarray, ends: np.ndarray, obstacles) -> np.ndarray:
    """(M,) bool: whether each straight segment from ``a`` (2,) to ``ends`` (M, 2), sampled
    every 0.1 m, stays free for an agent of radius ``EDGE_CLEARANCE``."""
    ends = np.asarray(ends, np.float64).reshape(-1, 2)
    if not len(ends):
        return np.zeros(0, bool)
    samples = int(np.ceil(np.linalg.norm(ends - a, axis=1).max() / 0.1)) + 1
    fractions = np.linspace(0.0, 1.0, max(samples, 2))
    points = a + fractions[None, :, None] * (ends - a)[:, None, :]  # (M, S, 2)
    free = free_space_mask(house, points.reshape(-1, 2), EDGE_CLEARANCE, obstacles)
    return free.reshape(len(ends), -1).all(axis=1)


def _free_grid(house: House, obstacles) -> np.ndarray:
    """(N, 2) centres of the ``GRID_STEP`` cells where a viewpoint may stand."""
    low, high = house.bounds
    xs = np.arange(low[0], high[0], GRID_STEP) + GRID_STEP / 2
    ys = np.arange(low[1], high[1], GRID_STEP) + GRID_STEP / 2
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    return grid[free_space_mask(house, grid, AGENT_RADIUS, obstacles)]


class _GraphBuilder:
    """Adds viewpoints one at a time, linking each to every earlier one it can reach."""

    def __init__(self, house: House, renderer: HouseRenderer, obstacles: np.ndarray):
        self.house, self.renderer, self.obstacles = house, renderer, obstacles
        self.graph = nx.Graph()
        self.points: list[np.ndarray] = []

    def links(self, point: np.ndarray) -> list[tuple[int, float]]:
        """(node, distance) of every existing viewpoint an edge from ``point`` may join."""
        if not self.points:
            return []
        distances = np.linalg.norm(np.array(self.points) - point, axis=1)
        near = np.flatnonzero(distances <= EDGE_BOUND)
        near = [int(i) for i in near[_walkable(self.house, point, np.array(self.points)[near], self.obstacles)]]
        if not near:
            return []
        lift = lambda p: np.append(p, CAMERA_HEIGHT)  # noqa: E731
        seen = self.renderer.clear_lines(np.repeat(lift(point)[None], len(near), axis=0),
                                         np.array([lift(self.points[i]) for i in near]))
        return [(i, float(distances[i])) for i, ok in zip(near, seen) if ok]

    def add(self, point: np.ndarray, links=None) -> None:
        links = self.links(point) if links is None else links
        node = len(self.points)
        room = self.house.room_at(point)
        self.graph.add_node(node, position=(float(point[0]), float(point[1]), CAMERA_HEIGHT),
                            room=room, room_kind=self.house.rooms[room].kind if room >= 0 else "doorway")
        for other, distance in links:
            self.graph.add_edge(node, other, weight=distance)
        self.points.append(np.asarray(point, np.float64))

    def bridge(self, grid: np.ndarray) -> bool:
        """Adds one grid viewpoint joining the largest component to another; False if none."""
        components = sorted(nx.connected_components(self.graph), key=len, reverse=True)
        member = np.zeros(len(self.points), int)
        for label, component in enumerate(components):
            member[list(component)] = label
        distances = np.linalg.norm(grid[:, None] - np.array(self.points)[None], axis=-1)
        gap = distances.min(axis=1)
        for index in np.argsort(-gap, kind="stable"):
            within = distances[index] <= EDGE_BOUND
            if gap[index] < 0.8 or not (within & (member == 0)).any() or not (within & (member > 0)).any():
                continue
            links = self.links(grid[index])
            labels = {member[node] for node, _ in links}
            if 0 in labels and len(labels) > 1:
                self.add(grid[index], links)
                return True
        return False


def build_navigation_graph(house: House, renderer: HouseRenderer | None = None) -> nx.Graph:
    """The connected navigation graph of ``house`` (deterministic given the house).

    Where the sampled viewpoints leave a component cut off, a bridging viewpoint is added
    (from the free grid, as far from existing ones as possible) until all are joined or no
    bridge exists; then the largest component is kept.
    """
    renderer = renderer or HouseRenderer(house.boxes)
    rng = np.random.default_rng([house.seed, 0x6A7])
    obstacles = obstacle_rects(house)
    builder = _GraphBuilder(house, renderer, obstacles)
    for point in _sample_viewpoints(house, rng, obstacles):
        builder.add(point)
    grid = _free_grid(house, obstacles)
    while not nx.is_connected(builder.graph) and builder.bridge(grid):
        pass
    largest = max(nx.connected_components(builder.graph), key=len)
    return nx.convert_node_labels_to_integers(
        builder.graph.subgraph(sorted(largest)).copy(), ordering="sorted")
