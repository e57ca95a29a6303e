"""English instructions for a path through a house, from templates.

An instruction describes, in order: leaving (or starting in) the first room, every room the
path goes through with the turn taken on entering it, an object passed on the way when one
stands close to the path, and where to stop — next to the object nearest the goal, in the
goal room: "Leave the bedroom, turn left and walk down the hallway, go into the kitchen and
stop next to the fridge." Every part has several phrasings; ``generate_instructions`` returns
``count`` different ones for one path.

Rooms and objects are what only observations reveal: a navigator that sees the graph alone
knows the turns and distances but not which door leads to the kitchen.
"""

from __future__ import annotations

import numpy as np

from worldsim.envs.navigation.scene import HouseScene

CHARSET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.'-"
MAX_LENGTH = 400
LANDMARK_RADIUS = 2.0  # metres from the goal (or from the path) an object may be named within


def turn_word(incoming: np.ndarray, outgoing: np.ndarray) -> str:
    """"straight", "left", "right" or "around" for a change of direction (2-D vectors)."""
    angle = np.degrees(np.arctan2(incoming[0] * outgoing[1] - incoming[1] * outgoing[0],
                                  incoming @ outgoing))
    if abs(angle) < 35:
        return "straight"
    if abs(angle) > 145:
        return "around"
    return "left" if angle > 0 else "right"


def _room_runs(scene: HouseScene, path: list[int]) -> list[tuple[str, int]]:
    """(room kind, index in path of the first node in it) for each run of nodes in one room;
    doorway nodes join the run before them."""
    runs: list[tuple[str, int]] = []
    for index, node in enumerate(path):
        kind = scene.room_kind(node)
        if kind == "doorway" or (runs and runs[-1][0] == kind):
            continue
        runs.append((kind, index))
    return runs


def _nearest_object(scene: HouseScene, point: np.ndarray, room: int | None,
                     exclude: tuple[str, ...] = ()) -> tuple[str, float] | None:
    best = None
    for item in scene.house.furniture:
        if (room is not None and item.room != room) or item.name in exclude:
            continue
        distance = float(np.linalg.norm(item.center[:2] - point[:2]))
        if distance <= LANDMARK_RADIUS and (best is None or distance < best[1]):
            best = (item.name, distance)
    return best


def _turns(scene: HouseScene, path: list[int]) -> list[str]:
    """Turn taken at each node of the path (the first and last get "straight")."""
    xy = [scene.position(n)[:2] for n in path]
    turns = ["straight"]
    for i in range(1, len(path) - 1):
        turns.append(turn_word(xy[i] - xy[i - 1], xy[i + 1] - xy[i]))
    return turns + ["straight"]


def _the(room: str) -> str:
    return f"the {room}"


def _opening(rng, room: str, leaves: bool) -> str:
    if leaves:
        return rng.choice([f"leave {_the(room)}", f"walk out of {_the(room)}", f"exit {_the(room)}"])
    return rng.choice([f"walk through {_the(room)}", f"go across {_the(room)}",
                       f"walk forward in {_the(room)}"])


def _enter(rng, room: str, turn: str) -> str:
    if room == "hallway":
        base = rng.choice(["walk down the hallway", "go along the hallway", "follow the hallway"])
    else:
        base = rng.choice([f"go into {_the(room)}", f"enter {_the(room)}", f"walk into {_the(room)}"])
    if turn in ("left", "right"):
        return rng.choice([f"turn {turn} and {base}", f"{base} on your {turn}"])
    if turn == "around":
        return f"turn around and {base}"
    return base


def _stop(rng, scene: HouseScene, goal: int, room: str) -> str:
    position = scene.position(goal)
    landmark = _nearest_object(scene, position, scene.graph.nodes[goal]["room"])
    if landmark is None:
        return rng.choice([f"stop in {_the(room)}", f"wait inside {_the(room)}"])
    name, distance = landmark
    where = "next to" if distance < 1.3 else rng.choice(["near", "close to"])
    return rng.choice([f"stop {where} the {name}", f"wait {where} the {name}",
                       f"stop {where} the {name} in {_the(room)}"])


def _sentence(parts: list[str]) -> str:
    text = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    return text[0].upper() + text[1:] + "."


def describe_path(scene: HouseScene, path: list[int], rng: np.random.Generator) -> str:
    """One instruction for ``path`` (a list of graph nodes, at least two)."""
    if len(path) < 2:
        raise ValueError(f"an instruction needs a path of at least 2 viewpoints, got {path!r}.")
    runs = _room_runs(scene, path)
    turns = _turns(scene, path)
    parts = [_opening(rng, runs[0][0], leaves=len(runs) > 1)]
    passed = None
    for room, first in runs[1:]:
        turn = turns[max(first - 1, 0)] if turns[max(first - 1, 0)] != "straight" else turns[first]
        parts.append(_enter(rng, room, turn))
    if len(runs) == 1:
        moves = [t for t in turns[1:-1] if t != "straight"]
        if moves:
            parts.append(f"turn {moves[0]}" if moves[0] != "around" else "turn around")
    middle = path[len(path) // 2]
    passed = _nearest_object(scene, scene.position(middle), None)
    if passed is not None and len(path) > 3 and rng.random() < 0.6:
        parts.insert(len(parts) - 1 if len(parts) > 1 else 1, f"pass the {passed[0]}")
    parts.append(_stop(rng, scene, path[-1], runs[-1][0]))
    text = _sentence(parts)
    return text[:MAX_LENGTH]


def generate_instructions(scene: HouseScene, path: list[int], rng: np.random.Generator,
                          count: int = 3) -> list[str]:
    """Up to ``count`` distinct phrasings for ``path`` (fewer only if the templates run out)."""
    found: list[str] = []
    for _ in range(count * 10):
        text = describe_path(scene, path, rng)
        if text not in found:
            found.append(text)
        if len(found) == count:
            break
    return found
