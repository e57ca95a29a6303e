"""Navigation episodes: where to start, where the goal is, and how it is described.

Three goal types share the houses and the graph:

* ``instruction`` (Room-to-Room style): a shortest path of 4–7 viewpoints, at least 4 m long,
  visiting two or more rooms where the house allows; three phrasings of its description.
* ``object``: "Find a bathtub." — goal viewpoints are those in the object's room within
  ``OBJECT_GOAL_RADIUS`` of an instance; the reference path leads to the nearest.
* ``point``: a goal viewpoint at least 4 m away, given as a vector (``goal_vector``).

Episodes with the start at the goal or an unreachable goal are never generated.
"""

from __future__ import annotations

import dataclasses

import networkx as nx
import numpy as np

from worldsim.envs.navigation.instructions import generate_instructions
from worldsim.envs.navigation.scene import HouseScene, pair_in_split
from worldsim.envs.navigation.semantics import OBJECT_GOALS

GOAL_TYPES = ("instruction", "object", "point")
MIN_PATH_NODES, MAX_PATH_NODES = 4, 7
MIN_GOAL_DISTANCE = 4.0  # metres of graph distance
OBJECT_GOAL_RADIUS = 2.0
SAMPLING_TRIES = 200


class EpisodeSamplingError(RuntimeError):
    """A house has no episode of the requested kind."""


@dataclasses.dataclass(frozen=True)
class NavEpisode:
    """One episode. Nodes are viewpoints of the house's navigation graph.

    goals: the goal viewpoints (one, except for object goals); reference_path: the shortest
    path from start to the goal it reaches first; instructions: the phrasings (the first is
    the observation); target: the object name for object goals.
    """

    goal_type: str
    house_seed: int
    start: int
    goals: tuple[int, ...]
    reference_path: tuple[int, ...]
    instructions: tuple[str, ...]
    target: str = ""


def check_goal_type(goal_type: str) -> str:
    if goal_type not in GOAL_TYPES:
        raise ValueError(f"Unknown goal type {goal_type!r}. Known goal types: {', '.join(GOAL_TYPES)}.")
    return goal_type


def shortest_path(scene: HouseScene, start: int, goal: int) -> list[int]:
    return nx.shortest_path(scene.graph, start, goal, weight="weight")


def sample_instruction_episode(scene, rng, split: str) -> NavEpisode:
    nodes = np.array(sorted(scene.graph.nodes))
    fallback = None
    for _ in range(SAMPLING_TRIES):
        start, goal = (int(n) for n in rng.choice(nodes, 2, replace=False))
        if scene.distances[start].get(goal, np.inf) < MIN_GOAL_DISTANCE:
            continue
        if not pair_in_split(split, scene.house.seed, start, goal):
            continue
        path = shortest_path(scene, start, goal)
        if not MIN_PATH_NODES <= len(path) <= MAX_PATH_NODES:
            continue
        rooms = {scene.room_kind(n) for n in path} - {"doorway"}
        if len(rooms) < 2 and fallback is None:
            fallback = path
            continue
        if len(rooms) >= 2:
            return _instruction_episode(scene, rng, path)
    if fallback is None:
        raise EpisodeSamplingError(f"house {scene.house.seed} has no {split} instruction episode.")
    return _instruction_episode(scene, rng, fallback)


def _instruction_episode(scene, rng, path) -> NavEpisode:
    texts = generate_instructions(scene, path, rng, count=3)
    return NavEpisode("instruction", scene.house.seed, path[0], (path[-1],), tuple(path), tuple(texts))


def object_goal_nodes(scene: HouseScene, target: str) -> tuple[int, ...]:
    """Viewpoints in the room of an instance of ``target`` within ``OBJECT_GOAL_RADIUS``."""
    goals = []
    for item in scene.house.furniture:
        if item.name != target:
            continue
        for node in scene.graph.nodes:
            near = np.linalg.norm(scene.position(node)[:2] - item.center[:2]) <= OBJECT_GOAL_RADIUS
            if near and scene.graph.nodes[node]["room"] == item.room:
                goals.append(node)
    return tuple(sorted(set(goals)))


def sample_object_episode(scene, rng, split: str) -> NavEpisode:
    present = [t for t in OBJECT_GOALS if object_goal_nodes(scene, t)]
    if not present:
        raise EpisodeSamplingError(f"house {scene.house.seed} has no object to look for.")
    nodes = np.array(sorted(scene.graph.nodes))
    for _ in range(SAMPLING_TRIES):
        target = present[int(rng.integers(len(present)))]
        goals = object_goal_nodes(scene, target)
        start = int(rng.choice(nodes))
        nearest = min(goals, key=lambda g: scene.distances[start][g])
        if scene.distances[start][nearest] < MIN_GOAL_DISTANCE:
            continue
        if not pair_in_split(split, scene.house.seed, start, nearest):
            continue
        phrasing = [f"Find a {target}.", f"Go to the {target}.", f"Look for the {target} and stop there."]
        return NavEpisode("object", scene.house.seed, start, goals,
                          tuple(shortest_path(scene, start, nearest)), tuple(phrasing), target)
    raise EpisodeSamplingError(f"house {scene.house.seed} has no {split} object episode.")


def sample_point_episode(scene, rng, split: str) -> NavEpisode:
    nodes = np.array(sorted(scene.graph.nodes))
    for _ in range(SAMPLING_TRIES):
        start, goal = (int(n) for n in rng.choice(nodes, 2, replace=False))
        if scene.distances[start][goal] < MIN_GOAL_DISTANCE or not pair_in_split(
                split, scene.house.seed, start, goal):
            continue
        return NavEpisode("point", scene.house.seed, start, (goal,),
                          tuple(shortest_path(scene, start, goal)), ("Go to the point goal.",))
    raise EpisodeSamplingError(f"house {scene.house.seed} has no {split} point-goal episode.")


SAMPLERS = {"instruction": sample_instruction_episode, "object": sample_object_episode,
            "point": sample_point_episode}


def sample_episode(goal_type: str, scene: HouseScene, rng: np.random.Generator, split: str) -> NavEpisode:
    """An episode of ``goal_type`` in ``scene`` belonging to ``split``."""
    return SAMPLERS[check_goal_type(goal_type)](scene, rng, split)
