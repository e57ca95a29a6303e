"""The common machinery of the block tasks: spaces, action handling, observation assembly.

A task subclasses ``BlockTaskEnv`` and fills in four hooks: ``_build`` (create its bodies in the freshly built world),
``_randomize`` (place them at reset), ``_state_observation`` (the state dict, in the order of
``STATE_KEYS``) and ``_evaluate`` (reward and success after a step).
"""

from __future__ import annotations

import abc
import math
from collections import OrderedDict
from typing import Any, Callable

import gymnasium
import numpy as np
from gymnasium import spaces

from worldsim.envs.manipulation.scene import XArmScene

OBS_MODES = ("state", "rgb", "state+rgb")
MAX_ACTION = 0.1  # metres of effector-target motion per control step


def _state_key_space(key: str) -> spaces.Box:
    if key.endswith("_translation"):
        return spaces.Box(-5.0, 5.0, (2,), np.float32)
    if key.endswith("_orientation"):
        return spaces.Box(-2 * math.pi, 2 * math.pi, (1,), np.float32)
    raise ValueError(f"state key {key!r} must end in '_translation' or '_orientation'")


def wrap_angle(angle: float) -> float:
    """Angle in radians wrapped into [-pi, pi)."""
    return (angle + math.pi) % (2 * math.pi) - math.pi


def sample_separated(rng: np.random.Generator, sample: Callable[[], np.ndarray], count: int,
                     min_distance: float, attempts: int = 1000) -> list[np.ndarray]:
    """``count`` xy points from ``sample`` that are pairwise ≥ ``min_distance`` apart (full xy)."""
    for _ in range(attempts):
        points = [sample() for _ in range(count)]
        if all(np.linalg.norm(a - b) >= min_distance
               for i, a in enumerate(points) for b in points[i + 1:]):
            return points
    raise RuntimeError(f"could not place {count} objects {min_distance} m apart in {attempts} tries")


class BlockTaskEnv(gymnasium.Env, abc.ABC):
    """An xArm6 pushing blocks on a table; actions are effector-target deltas in metres.

    Args:
      obs_mode: "state" (dict of 2-D translations and 1-D yaws), "rgb" (dict with one
        (H, W, 3) uint8 image) or "state+rgb" (both).
      render_mode: None or "rgb_array".
      image_size: (height, width) of image observations and renders.
      goal_tolerance: success distance in metres.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    STATE_KEYS: tuple[str, ...] = ()
    DEFAULT_GOAL_TOLERANCE = 0.02

    def __init__(self, obs_mode: str = "state", render_mode: str | None = None,
                 image_size: tuple[int, int] = (180, 240), goal_tolerance: float | None = None):
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode={obs_mode!r} is not one of {OBS_MODES}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} is not one of (None, 'rgb_array')")
        if len(image_size) != 2 or min(image_size) < 8:
            raise ValueError(f"image_size={image_size!r} must be (height, width), each ≥ 8 pixels")
        tolerance = self.DEFAULT_GOAL_TOLERANCE if goal_tolerance is None else float(goal_tolerance)
        if not tolerance > 0:
            raise ValueError(f"goal_tolerance={goal_tolerance!r} must be a positive distance in metres")
        self.obs_mode = obs_mode
        self.render_mode = render_mode
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.goal_tolerance = tolerance
        self.scene = XArmScene()
        self._build()
        self.action_space = spaces.Box(-MAX_ACTION, MAX_ACTION, (2,), np.float32)
        self.observation_space = self._make_observation_space()

    # ------------------------------------------------------------------ hooks for subclasses
    @abc.abstractmethod
    def _build(self) -> None:
        """Creates the task's bodies in a freshly built world (at construction and every reset)."""

    @abc.abstractmethod
    def _randomize(self) -> None:
        """Places the task's bodies for a new episode, drawing from ``self.np_random``."""

    def _start_episode(self) -> None:
        """Called after the scene settled at reset; initialise progress trackers here."""

    @abc.abstractmethod
    def _state_observation(self) -> dict[str, np.ndarray]:
        """The task state, keyed like ``STATE_KEYS``."""

    @abc.abstractmethod
    def _evaluate(self) -> tuple[float, bool, dict[str, Any]]:
        """(reward, success, extra info) after a step."""

    # ------------------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.scene.reset_world()
        self._build()
        self._randomize()
        self.scene.settle()
        self._start_episode()
        _, success, extra = self._evaluate()
        return self._observation(), {"is_success": bool(success), **extra}

    def step(self, action):
        action = np.asarray(action, dtype=np.float64).reshape(self.action_space.shape)
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action contains NaN or inf: {action.tolist()}; expected finite "
                             f"(dx, dy) in [-{MAX_ACTION}, {MAX_ACTION}] m")
        self.scene.move_effector(np.clip(action, -MAX_ACTION, MAX_ACTION))
        reward, success, extra = self._evaluate()
        return self._observation(), float(reward), bool(success), False, {
            "is_success": bool(success), **extra}

    def render(self):
        if self.render_mode == "rgb_array":
            return self.scene.render(*self.image_size)
        return None

    def close(self):
        if getattr(self, "scene", None) is not None:
            self.scene.close()
            self.scene = None

    # ------------------------------------------------------------------------------ helpers
    def _make_observation_space(self) -> spaces.Dict:
        items: dict[str, spaces.Space] = {}
        if self.obs_mode in ("state", "state+rgb"):
            items.update({key: _state_key_space(key) for key in self.STATE_KEYS})
        if self.obs_mode in ("rgb", "state+rgb"):
            items["rgb"] = spaces.Box(0, 255, (*self.image_size, 3), np.uint8)
        return spaces.Dict(OrderedDict(items))  # a plain dict would be sorted by key

    def state(self) -> dict[str, np.ndarray]:
        """The task state (keys of ``STATE_KEYS``, float32) whatever the observation mode."""
        state = self._state_observation()
        return {key: np.asarray(state[key], np.float32).reshape(-1) for key in self.STATE_KEYS}

    def _observation(self) -> dict[str, np.ndarray]:
        obs: dict[str, np.ndarray] = {}
        if self.obs_mode in ("state", "state+rgb"):
            obs.update(self.state())
        if self.obs_mode in ("rgb", "state+rgb"):
            obs["rgb"] = self.scene.render(*self.image_size)
        return obs

    def _effector_observation(self) -> dict[str, np.ndarray]:
        return {"effector_translation": self.scene.effector_xy(),
                "effector_target_translation": self.scene.effector_target.copy()}

    def _uniform(self, low, high) -> np.ndarray:
        return self.np_random.uniform(low, high)
