"""Gymnasium environments for navigation on the viewpoint graph of procedural houses.

``IndoorNavEnv`` moves an agent between the viewpoints of a house's navigation graph (as in
Room-to-Room): at each step it either moves to one of the current viewpoint's neighbours or
stops. ``goal_type`` picks the task: "instruction" (``worldsim/IndoorNav-v0``), "object"
(``worldsim/ObjectNav-v0``) or "point" (``worldsim/PointNav-v0``).

Observation (a Dict):

* ``rgb`` (H, W, 3) uint8, ``depth`` (H, W) float32 range in metres, ``semantic`` (H, W)
  uint8 mpcat40 ids — the equirectangular panorama at the current viewpoint, world-aligned;
* ``instruction`` — the task in English (for point goals, a fixed sentence);
* ``neighbor_headings`` (K,) radians (world frame: 0 along +x, π/2 along +y) and
  ``neighbor_distances`` (K,) metres of the neighbours in action order, zero-padded;
* ``position`` (3,) metres and ``heading`` (1,) radians (the direction of the last move);
* point goals only: ``goal_vector`` (2,) — distance (m) and world heading (rad) to the goal.

Action: ``Discrete(K + 1)``; 0 is STOP and ``k`` ≥ 1 moves to neighbour ``k − 1``, the
neighbours sorted by world heading. ``info["action_mask"]`` marks the valid actions. A masked
or out-of-range action raises a ValueError — unless the env was made with
``invalid_action="stay"`` (the agent stays put and ``info["invalid_action"]`` is True), which
exists because Gymnasium's ``check_env`` steps with unmasked random actions.

Reward: the decrease of the graph distance to the goal, plus ``±SUCCESS_REWARD`` on stopping
inside or outside the success distance. The episode ends on STOP (terminated) or after
``max_steps`` moves (truncated); then ``info["metrics"]`` holds ``ne, sr, osr, tl, spl, ndtw,
sdtw, cls`` (``worldsim.eval.episode_metrics``) with the threshold used.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from worldsim.envs.navigation import tasks
from worldsim.envs.navigation.graph import EDGE_BOUND
from worldsim.envs.navigation.instructions import CHARSET, MAX_LENGTH
from worldsim.envs.navigation.scene import SPLITS, check_house_seed, check_split, load_scene
from worldsim.envs.navigation.semantics import NUM_CLASSES
from worldsim.eval.navigation_metrics import episode_metrics

MAX_NEIGHBORS = 12
STOP = 0
SUCCESS_REWARD = 2.0
SUCCESS_DISTANCE = {"instruction": 3.0, "object": 1.0, "point": 1.0}  # metres, graph distance
DEFAULT_MAX_STEPS = {"instruction": 20, "object": 40, "point": 30}
INVALID_ACTION_MODES = ("raise", "stay")


class IndoorNavEnv(gym.Env):
    """Viewpoint-graph navigation in procedural houses (see the module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 2}

    def __init__(self, goal_type: str = "instruction", split: str = "train",
                 panorama_size: tuple[int, int] = (128, 256), house_seed: int | None = None,
                 max_steps: int | None = None, success_distance: float | None = None,
                 invalid_action: str = "raise", render_mode: str | None = None):
        self.goal_type = tasks.check_goal_type(goal_type)
        self.split = check_split(split)
        self.fixed_house = None if house_seed is None else check_house_seed(split, house_seed)
        if invalid_action not in INVALID_ACTION_MODES:
            raise ValueError(f"invalid_action must be one of {INVALID_ACTION_MODES}, got {invalid_action!r}.")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}.")
        self.invalid_action = invalid_action
        self.render_mode = render_mode
        self.height, self.width = (int(v) for v in panorama_size)
        self.max_steps = int(max_steps or DEFAULT_MAX_STEPS[goal_type])
        self.success_distance = float(success_distance or SUCCESS_DISTANCE[goal_type])
        if self.success_distance <= 0 or self.max_steps < 1:
            raise ValueError(f"need success_distance > 0 and max_steps >= 1, got "
                             f"{self.success_distance} and {self.max_steps}.")
        self.action_space = spaces.Discrete(MAX_NEIGHBORS + 1)
        self.observation_space = self._observation_space()
        self.scene = self.episode = None

    def _observation_space(self) -> spaces.Dict:
        shape = (self.height, self.width)
        entries = {
            "rgb": spaces.Box(0, 255, (*shape, 3), np.uint8),
            "depth": spaces.Box(0.0, 100.0, shape, np.float32),
            "semantic": spaces.Box(0, NUM_CLASSES - 1, shape, np.uint8),
            "instruction": spaces.Text(MAX_LENGTH, charset=CHARSET),
            "neighbor_headings": spaces.Box(-np.pi, np.pi, (MAX_NEIGHBORS,), np.float32),
            "neighbor_distances": spaces.Box(0.0, EDGE_BOUND + 1.0, (MAX_NEIGHBORS,), np.float32),
            "position": spaces.Box(-1000.0, 1000.0, (3,), np.float32),
            "heading": spaces.Box(-np.pi, np.pi, (1,), np.float32),
        }
        if self.goal_type == "point":
            entries["goal_vector"] = spaces.Box(np.array([0.0, -np.pi], np.float32),
                                                np.array([1000.0, np.pi], np.float32))
        return spaces.Dict(entries)

    # --- episode state -------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"house_seed"}
        if unknown:
            raise ValueError(f"Unknown reset options {sorted(unknown)}; allowed: ['house_seed'].")
        if "house_seed" in options:
            house_seed = check_house_seed(self.split, options["house_seed"])
        elif self.fixed_house is not None:
            house_seed = self.fixed_house
        else:
            houses = SPLITS[self.split]
            house_seed = int(houses[int(self.np_random.integers(len(houses)))])
        self.scene = load_scene(house_seed)
        self.episode = tasks.sample_episode(self.goal_type, self.scene, self.np_random, self.split)
        self.node = self.episode.start
        self.path = [self.node]
        self.heading = float(self.np_random.uniform(-np.pi, np.pi))
        self.steps = 0
        return self._observation(), self._info()

    def neighbors(self, node: int | None = None) -> list[int]:
        """Neighbours of ``node`` (default: the current one) in action order."""
        node = self.node if node is None else node
        here = self.scene.position(node)
        def heading_to(other):
            delta = self.scene.position(other) - here
            return np.arctan2(delta[1], delta[0])
        return sorted(self.scene.graph.neighbors(node), key=heading_to)[:MAX_NEIGHBORS]

    def action_mask(self) -> np.ndarray:
        mask = np.zeros(MAX_NEIGHBORS + 1, bool)
        mask[: len(self.neighbors()) + 1] = True
        return mask

    def goal_distance(self, node: int | None = None) -> float:
        """Graph distance (m) from ``node`` to the nearest goal viewpoint."""
        node = self.node if node is None else node
        return min(self.scene.distances[node][g] for g in self.episode.goals)

    def _check_action(self, action) -> bool:
        if not (isinstance(action, (int, np.integer)) or (np.ndim(action) == 0 and float(action).is_integer())):
            raise ValueError(f"action must be an integer, got {action!r}.")
        action = int(action)
        valid = np.flatnonzero(self.action_mask())
        if action in valid:
            return True
        if self.invalid_action == "stay" and 0 <= action <= MAX_NEIGHBORS:
            return False
        raise ValueError(f"action {action} is not allowed at viewpoint {self.node}: valid actions are "
                         f"{valid.tolist()} (0 = STOP, k = move to neighbour k-1).")

    def step(self, action):
        if self.episode is None:
            raise RuntimeError("call reset() before step().")
        valid = self._check_action(action)
        before = self.goal_distance()
        terminated = valid and int(action) == STOP
        if valid and not terminated:
            target = self.neighbors()[int(action) - 1]
            delta = self.scene.position(target) - self.scene.position(self.node)
            self.heading = float(np.arctan2(delta[1], delta[0]))
            self.node = target
            self.path.append(target)
        self.steps += 1
        reward = before - self.goal_distance()
        if terminated:
            reward += SUCCESS_REWARD if self.goal_distance() < self.success_distance else -SUCCESS_REWARD
        truncated = not terminated and self.steps >= self.max_steps
        info = self._info(invalid_action=not valid)
        if terminated or truncated:
            info["metrics"] = self.metrics()
        return self._observation(), float(reward), terminated, truncated, info

    def metrics(self) -> dict[str, float]:
        """Navigation metrics of the path so far (against the goal nearest to its end)."""
        goal = min(self.episode.goals, key=lambda g: self.scene.distances[self.node][g])
        reference = list(self.episode.reference_path)
        if reference[-1] != goal:
            reference = tasks.shortest_path(self.scene, self.episode.start, goal)
        metrics = episode_metrics(self.scene.graph, self.path, reference,
                                  threshold=self.success_distance, distances=self.scene.distances)
        return {**metrics, "threshold": self.success_distance}

    # --- observations --------------------------------------------------------------------

    def _observation(self) -> dict[str, Any]:
        panorama = self.scene.panorama(self.node, self.height, self.width)
        here = self.scene.position(self.node)
        headings = np.zeros(MAX_NEIGHBORS, np.float32)
        distances = np.zeros(MAX_NEIGHBORS, np.float32)
        for slot, other in enumerate(self.neighbors()):
            delta = self.scene.position(other) - here
            headings[slot] = np.arctan2(delta[1], delta[0])
            distances[slot] = np.hypot(delta[0], delta[1])
        observation = {
            "rgb": panorama["rgb"], "depth": panorama["depth"], "semantic": panorama["semantic"],
            "instruction": self.episode.instructions[0],
            "neighbor_headings": headings, "neighbor_distances": distances,
            "position": here.astype(np.float32),
            "heading": np.array([self.heading], np.float32),
        }
        if self.goal_type == "point":
            delta = self.scene.position(self.episode.goals[0]) - here
            observation["goal_vector"] = np.array(
                [np.hypot(delta[0], delta[1]), np.arctan2(delta[1], delta[0])], np.float32)
        return observation

    def _info(self, invalid_action: bool = False) -> dict[str, Any]:
        return {
            "action_mask": self.action_mask(), "node": self.node, "house_seed": self.episode.house_seed,
            "goals": self.episode.goals, "reference_path": self.episode.reference_path,
            "instructions": self.episode.instructions, "distance_to_goal": self.goal_distance(),
            "invalid_action": invalid_action,
        }

    def render(self):
        if self.render_mode != "rgb_array" or self.scene is None:
            return None
        return self.scene.panorama(self.node, self.height, self.width)["rgb"]


def make_instruction_env(**kwargs) -> IndoorNavEnv:
    """``worldsim/IndoorNav-v0``: Room-to-Room-style instruction following."""
    return IndoorNavEnv(goal_type="instruction", **kwargs)


def make_object_env(**kwargs) -> IndoorNavEnv:
    """``worldsim/ObjectNav-v0``: "find a bathtub"."""
    return IndoorNavEnv(goal_type="object", **kwargs)


def make_point_env(**kwargs) -> IndoorNavEnv:
    """``worldsim/PointNav-v0``: reach the viewpoint given by ``goal_vector``."""
    return IndoorNavEnv(goal_type="point", **kwargs)
