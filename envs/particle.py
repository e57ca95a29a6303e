"""The N-D particle task of Implicit Behavioral Cloning: visit goal 1, then goal 2, and stay there.

A point mass in the unit cube [0, 1]^N follows a PD controller towards a position set-point
(the action). Positions are unitless fractions of the cube side; time is in seconds.

Differences from the original IBC code (reference/ibc.md §3.6, §11), all deliberate:

* success needs goal 1 hit *before* goal 2 (the original counted goal 2 visits made at any time);
* reward 1.0 on the step that succeeds, which terminates the episode (the original paid at step 50
  and ran the full episode); the 50-step limit is Gymnasium's TimeLimit truncation;
* positions stay in the cube: a coordinate that would leave [0, 1] is clipped and its velocity
  zeroed (an inelastic wall; the original let the ~2 % PD overshoot leave the cube);
* the oracle draws its random choices from the env's ``np_random``, never Python's ``random``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

OBS_MODES = ("state", "rgb", "state+rgb")
RENDER_MODES = (None, "rgb_array")
K_P = 10.0  # position gain, 1/s^2
K_V = 5.0  # velocity gain, 1/s
DT = 0.005  # integration step, s (200 Hz)
REPEATS = 10  # integration steps per env step (20 Hz control)
# With set-points and positions in [0, 1], |K_P (a - x)| <= K_P, so the Euler update
# v' = (1 - K_V dt) v + K_P dt (a - x) never leaves [-K_P / K_V, K_P / K_V].
MAX_SPEED = K_P / K_V  # per-coordinate bound on the velocity, units/s

_COLOURS = {"outside": (200, 200, 200), "arena": (255, 255, 255), "goal1": (60, 180, 75),
            "goal2": (0, 110, 220), "agent": (220, 30, 30)}


class ParticleEnv(gymnasium.Env):
    """A particle in [0, 1]^N that must reach goal 1, then goal 2 (within ``goal_distance``).

    Args:
      n_dim: N, the number of dimensions (≥ 1).
      goal_distance: success radius (Euclidean, in the N-D cube's units), > 0.
      hide_velocity: drop ``vel_agent`` from the observation.
      obs_mode: "state" (dict of (N,) float32 vectors: ``pos_agent``, ``vel_agent`` in units/s,
        ``pos_first_goal``, ``pos_second_goal``), "rgb" (dict with one (H, W, 3) uint8 ``rgb``
        image) or "state+rgb" (both).
      render_mode: None or "rgb_array" (``render()`` returns the ``rgb`` image).
      image_size: (H, W) in pixels of images; the top-down view shows the first two dims.

    Action: (N,) float32 position set-point in [0, 1]^N; out-of-range values are clipped.
    Reward: 1.0 on the step that succeeds (which terminates), else 0.0.
    Info: ``is_success``, ``first_goal_distance_min``, ``second_goal_distance_min`` (minimum over
    the states since goal 1 was hit; inf before), ``second_goal_distance`` (current).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": int(round(1 / (DT * REPEATS)))}

    def __init__(self, n_dim: int = 2, goal_distance: float = 0.05, hide_velocity: bool = False,
                 obs_mode: str = "state", render_mode: str | None = None,
                 image_size: tuple[int, int] = (180, 240)):
        _validate(n_dim, goal_distance, obs_mode, render_mode, image_size)
        self.n_dim = int(n_dim)
        self.goal_distance = float(goal_distance)
        self.hide_velocity = bool(hide_velocity)
        self.obs_mode = obs_mode
        self.render_mode = render_mode
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.action_space = spaces.Box(0.0, 1.0, (self.n_dim,), np.float32)
        self.observation_space = self._make_observation_space()
        self._pixel_world = _pixel_world_coordinates(self.image_size)
        self.pos = np.zeros(self.n_dim)  # (N,) agent position
        self.vel = np.zeros(self.n_dim)  # (N,) agent velocity, units/s
        self.first_goal = np.zeros(self.n_dim)  # (N,)
        self.second_goal = np.zeros(self.n_dim)  # (N,)
        self._first_min = self._second_min = np.inf
        self._succeeded = False

    def _make_observation_space(self) -> spaces.Dict:
        box = spaces.Box(0.0, 1.0, (self.n_dim,), np.float32)
        state = {"pos_agent": box}
        if not self.hide_velocity:
            state["vel_agent"] = spaces.Box(-MAX_SPEED, MAX_SPEED, (self.n_dim,), np.float32)
        state.update(pos_first_goal=box, pos_second_goal=box)
        rgb = {"rgb": spaces.Box(0, 255, (*self.image_size, 3), np.uint8)}
        chosen = {"state": state, "rgb": rgb, "state+rgb": {**state, **rgb}}[self.obs_mode]
        return spaces.Dict(OrderedDict(chosen))  # a plain dict would be sorted by key

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Draws the agent and both goals ~ U[0, 1]^N; velocity 0. Returns (obs, info)."""
        super().reset(seed=seed)
        self.pos = self.np_random.random(self.n_dim)
        self.vel = np.zeros(self.n_dim)
        self.first_goal = self.np_random.random(self.n_dim)
        self.second_goal = self.np_random.random(self.n_dim)
        self._first_min = self._second_min = np.inf
        self._succeeded = False
        self._update_minima()
        return self._observation(), self._info(False)

    def step(self, action):
        """Holds the (N,) set-point for REPEATS × DT = 0.05 s. Returns the Gymnasium 5-tuple."""
        setpoint = self._checked_action(action)
        for _ in range(REPEATS):
            self._integrate(setpoint)
        self._update_minima()
        success = self._is_success()
        reward = 1.0 if success and not self._succeeded else 0.0
        self._succeeded = self._succeeded or success
        return self._observation(), reward, success, False, self._info(success)

    def render(self) -> np.ndarray | None:
        """(H, W, 3) uint8 top-down image when render_mode == "rgb_array", else None."""
        if self.render_mode is None:
            gymnasium.logger.warn("ParticleEnv.render() called with render_mode=None; "
                                  "create the env with render_mode='rgb_array'.")
            return None
        return self._draw()

    def _checked_action(self, action) -> np.ndarray:
        setpoint = np.asarray(action, dtype=np.float64)
        if setpoint.shape != (self.n_dim,):
            raise ValueError(f"action has shape {setpoint.shape}; expected ({self.n_dim},)")
        if not np.all(np.isfinite(setpoint)):
            raise ValueError(f"action contains NaN or inf: {setpoint!r}; "
                             f"expected finite set-points in [0, 1]^{self.n_dim}")
        return np.clip(setpoint, 0.0, 1.0)

    def _integrate(self, setpoint: np.ndarray) -> None:
        """One explicit-Euler step of dt = DT under u = K_P (a - x) - K_V v, walls at 0 and 1."""
        accel = K_P * (setpoint - self.pos) - K_V * self.vel
        pos = self.pos + self.vel * DT
        self.vel = self.vel + accel * DT
        outside = (pos < 0.0) | (pos > 1.0)
        self.pos = np.clip(pos, 0.0, 1.0)
        self.vel[outside] = 0.0

    def _update_minima(self) -> None:
        self._first_min = min(self._first_min, _distance(self.pos, self.first_goal))
        if self._first_min < self.goal_distance:
            self._second_min = min(self._second_min, self.second_goal_distance)

    @property
    def second_goal_distance(self) -> float:
        """Current Euclidean distance from the agent to goal 2."""
        return _distance(self.pos, self.second_goal)

    def _is_success(self) -> bool:
        hit_first = self._first_min < self.goal_distance
        return bool(hit_first and self.second_goal_distance < self.goal_distance)

    def _info(self, success: bool) -> dict[str, Any]:
        return {"is_success": bool(success), "first_goal_distance_min": float(self._first_min),
                "second_goal_distance_min": float(self._second_min),
                "second_goal_distance": self.second_goal_distance}

    def _observation(self) -> dict[str, np.ndarray]:
        values = {"pos_agent": self.pos, "vel_agent": self.vel,
                  "pos_first_goal": self.first_goal, "pos_second_goal": self.second_goal}
        obs = {}
        for key in self.observation_space.spaces:
            obs[key] = self._draw() if key == "rgb" else values[key].astype(np.float32)
        return obs

    def _draw(self) -> np.ndarray:
        """(H, W, 3) uint8: goal 2 (blue) and goal 1 (green) discs of radius goal_distance and
        the agent (red dot), projected on dims (0, 1); 1-D tasks are drawn on the middle row."""
        u, v, inside = self._pixel_world
        image = np.empty((*self.image_size, 3), np.uint8)
        image[:] = _COLOURS["outside"]
        image[inside] = _COLOURS["arena"]
        for name, point, radius in (("goal2", self.second_goal, self.goal_distance),
                                    ("goal1", self.first_goal, self.goal_distance),
                                    ("agent", self.pos, 0.02)):
            x, y = _project(point)
            image[(u - x) ** 2 + (v - y) ** 2 <= radius ** 2] = _COLOURS[name]
        return image


class ParticleOracle:
    """Scripted demonstrator: set-point on goal 1 until there, then on goal 2.

    Args:
      env: the *unwrapped* ParticleEnv (read for the agent position and goals).
      noise_std: std of Gaussian action noise (cube units), drawn from ``env.np_random``.
      wait_at_first_goal: steps (≥ 1) the agent must be within ``goal_threshold`` of goal 1
        before the oracle switches to goal 2.
      goal_threshold: distance (> 0) to goal 1 that counts as being there.
      multimodal: visit the goals in a random order drawn from ``env.np_random`` at ``reset()``
        (the reversed order does not count as success for ParticleEnv).
    """

    def __init__(self, env: ParticleEnv, noise_std: float = 0.0, wait_at_first_goal: int = 1,
                 goal_threshold: float = 0.01, multimodal: bool = False):
        if not noise_std >= 0:
            raise ValueError(f"noise_std={noise_std!r} must be ≥ 0")
        if int(wait_at_first_goal) < 1:
            raise ValueError(f"wait_at_first_goal={wait_at_first_goal!r} must be ≥ 1")
        if not goal_threshold > 0:
            raise ValueError(f"goal_threshold={goal_threshold!r} must be > 0")
        self.env = env
        self.noise_std = float(noise_std)
        self.wait_at_first_goal = int(wait_at_first_goal)
        self.goal_threshold = float(goal_threshold)
        self.multimodal = bool(multimodal)
        self._order = (0, 1)
        self._steps_at_first = 0

    def reset(self) -> None:
        """Call after every ``env.reset``: clears the phase and (multimodal) draws the order."""
        self._steps_at_first = 0
        swap = self.multimodal and bool(self.env.np_random.integers(2))
        self._order = (1, 0) if swap else (0, 1)

    def act(self, obs: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """(N,) float32 set-point in [0, 1]^N. ``obs`` is unused: the oracle reads the env."""
        goals = (self.env.first_goal, self.env.second_goal)
        first, second = goals[self._order[0]], goals[self._order[1]]
        if _distance(self.env.pos, first) < self.goal_threshold:
            self._steps_at_first += 1
        target = first if self._steps_at_first < self.wait_at_first_goal else second
        self.clean_action = np.clip(target, 0.0, 1.0).astype(np.float32)  # the noise-free label
        if self.noise_std > 0:
            target = target + self.env.np_random.normal(0.0, self.noise_std, target.shape)
        return np.clip(target, 0.0, 1.0).astype(np.float32)


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b))


def _project(point: np.ndarray) -> tuple[float, float]:
    """The drawn (x, y) of an N-D point: dims 0 and 1, or (x, 0.5) when N == 1."""
    return float(point[0]), (float(point[1]) if len(point) > 1 else 0.5)


def _pixel_world_coordinates(image_size: tuple[int, int]):
    """World (u, v) of every pixel centre, each (H, W), and the (H, W) mask of the unit square.

    The unit square fills the centred min(H, W) square of the image, v pointing up."""
    height, width = image_size
    side = min(height, width)
    rows, cols = np.mgrid[0:height, 0:width] + 0.5
    u = (cols - (width - side) / 2) / side
    v = 1.0 - (rows - (height - side) / 2) / side
    inside = (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)
    return u, v, inside


def _validate(n_dim, goal_distance, obs_mode, render_mode, image_size) -> None:
    if isinstance(n_dim, bool) or not isinstance(n_dim, (int, np.integer)) or n_dim < 1:
        raise ValueError(f"n_dim={n_dim!r} must be an integer ≥ 1")
    if not (isinstance(goal_distance, (int, float, np.floating)) and 0 < goal_distance < np.inf):
        raise ValueError(f"goal_distance={goal_distance!r} must be a finite distance > 0")
    if obs_mode not in OBS_MODES:
        raise ValueError(f"obs_mode={obs_mode!r} is not one of {OBS_MODES}")
    if render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode={render_mode!r} is not one of {RENDER_MODES}")
    if len(image_size) != 2 or min(int(s) for s in image_size) < 8:
        raise ValueError(f"image_size={image_size!r} must be (height, width), each ≥ 8 pixels")
