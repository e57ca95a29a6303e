"""BlockSort: push coloured cubes into the zone of their colour (worldsim design, reference §3.5).

The simulated counterpart of the Implicit BC real-robot "Sort-Blue-From-Yellow" task, on the
BlockPush physics (same arm, tip, control and action). Distances are in metres, angles in radians.
"""

from __future__ import annotations

import math

import numpy as np

from worldsim.envs.manipulation.base import BlockTaskEnv
from worldsim.envs.manipulation.oracles import (MOVE_SPEED, PRE_PUSH_OFFSET, ARRIVAL_RADIUS,
                                               BlockOracle, step_towards, unit, via_points)
from worldsim.envs.manipulation.scene import BLUE, GREEN, RED, YELLOW

COLOURS = {"blue": BLUE, "yellow": YELLOW, "red": RED, "green": GREEN}
BLOCK_AREA_CENTRE = (0.4, 0.0)  # blocks reset around here; zones sit on an arc around it
BLOCK_AREA_HALF = (0.1, 0.12)  # x, y half-ranges of the block reset area
MIN_BLOCK_DISTANCE = 0.08  # full-xy distance between block centres at reset
MAX_BLOCKS = 8  # the most blocks the rejection sampler places reliably in the reset area
ZONE_RADIUS = 0.25  # distance of the zone centres from BLOCK_AREA_CENTRE
ZONE_JITTER = 0.02  # U(±0.02) on each zone coordinate at reset


def zone_layout(n_colours: int) -> np.ndarray:
    """Nominal zone centres (n_colours, 2): evenly spread on the far half of a 0.25 m circle
    round the block area, from +y over +x to -y. Two colours give (0.4, ±0.25)."""
    angles = np.linspace(math.pi / 2, -math.pi / 2, n_colours)
    return np.asarray(BLOCK_AREA_CENTRE) + ZONE_RADIUS * np.stack([np.cos(angles), np.sin(angles)], 1)


class BlockSortEnv(BlockTaskEnv):
    """Sort ``n_blocks_per_colour`` cubes of each colour into that colour's zone.

    Args:
      n_blocks_per_colour: cubes per colour (≥ 1; at most 8 cubes in all).
      colours: 2 to 4 distinct names from ``COLOURS``; colour c owns zone c.
      goal_tolerance: zone radius in metres (default 0.06): a cube is sorted when its centre is
        within this xy distance of its colour's zone centre.
      obs_mode, render_mode, image_size: as in ``BlockTaskEnv``.

    Observation (state): ``block{i}_translation`` (2) and ``block{i}_orientation`` (1, yaw) per cube
    in colour-major slot order (cubes 0..n-1 have colour 0, and so on), ``effector_translation``,
    ``effector_target_translation``, then ``zone{c}_translation`` per colour — 20-D for 2 + 2.
    Zones are visual-only discs; with two colours they sit at x = 0.4, y = ±0.25 (colour 0 at +y),
    with more on the arc of ``zone_layout``; each centre is jittered by U(±0.02) at reset.
    Reward: fraction of cubes currently sorted. Success (``info["is_success"]``, terminates):
    every cube sorted. ``info["n_sorted"]`` counts sorted cubes. Registered with a 400-step limit.
    """

    DEFAULT_GOAL_TOLERANCE = 0.06

    def __init__(self, n_blocks_per_colour: int = 2, colours: tuple[str, ...] = ("blue", "yellow"),
                 obs_mode: str = "state", render_mode: str | None = None,
                 image_size: tuple[int, int] = (180, 240), goal_tolerance: float | None = None):
        colours = (colours,) if isinstance(colours, str) else tuple(colours)
        if not 2 <= len(colours) <= len(COLOURS) or len(set(colours)) != len(colours) \
                or any(c not in COLOURS for c in colours):
            raise ValueError(f"colours={colours!r} must be 2 to {len(COLOURS)} distinct names "
                             f"from {tuple(COLOURS)}")
        n = n_blocks_per_colour
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n * len(colours) <= MAX_BLOCKS:
            raise ValueError(f"n_blocks_per_colour={n_blocks_per_colour!r} must be an integer ≥ 1 with "
                             f"at most {MAX_BLOCKS} cubes in all ({len(colours)} colours given)")
        self.colours = colours
        self.n_blocks_per_colour = int(n_blocks_per_colour)
        self.n_blocks = self.n_blocks_per_colour * len(colours)
        self.block_colour = np.repeat(np.arange(len(colours)), self.n_blocks_per_colour)
        self.STATE_KEYS = (
            *(f"block{i}_{part}" for i in range(self.n_blocks) for part in ("translation", "orientation")),
            "effector_translation", "effector_target_translation",
            *(f"zone{c}_translation" for c in range(len(colours))))
        super().__init__(obs_mode, render_mode, image_size, goal_tolerance)

    def _build(self) -> None:
        self.blocks = [self.scene.add_block(COLOURS[self.colours[c]]) for c in self.block_colour]
        self.zones = [self._add_disc(COLOURS[c]) for c in self.colours]
        self.zone_xy = zone_layout(len(self.colours))

    def _add_disc(self, rgba: tuple[float, ...]) -> int:
        """A flat visual-only disc of radius ``goal_tolerance``, a paler shade of ``rgba``."""
        pale = (*(0.5 + 0.5 * np.asarray(rgba[:3])), 1.0)
        client = self.scene.client
        visual = client.createVisualShape(client.GEOM_CYLINDER, radius=self.goal_tolerance,
                                          length=0.001, rgbaColor=pale)
        return client.createMultiBody(0, -1, visual, basePosition=(0.4, 0.0, 0.0005))

    def _randomize(self) -> None:
        nominal = zone_layout(len(self.colours))
        self.zone_xy = nominal + self._uniform(np.full_like(nominal, -ZONE_JITTER), ZONE_JITTER)
        for zone, xy in zip(self.zones, self.zone_xy):
            self.scene.place(zone, xy, 0.0, z=0.0005)
        for block, xy in zip(self.blocks, self._sample_block_xy()):
            self.scene.place(block, xy, self._uniform(0, math.pi), z=0.02)

    def _sample_block_xy(self) -> list[np.ndarray]:
        """Cube centres in the reset area, pairwise ≥ 0.08 m apart: each draw is kept if it clears
        the cubes kept so far; 1000 restarts of 100 draws per cube at most."""
        low, high = np.subtract(BLOCK_AREA_CENTRE, BLOCK_AREA_HALF), np.add(BLOCK_AREA_CENTRE, BLOCK_AREA_HALF)
        for _ in range(1000):
            points: list[np.ndarray] = []
            for _ in range(100 * self.n_blocks):
                xy = self._uniform(low, high)
                if all(np.linalg.norm(xy - p) >= MIN_BLOCK_DISTANCE for p in points):
                    points.append(xy)
                if len(points) == self.n_blocks:
                    return points
        raise RuntimeError(f"could not place {self.n_blocks} cubes {MIN_BLOCK_DISTANCE} m apart")

    def block_xy(self) -> np.ndarray:
        """(n_blocks, 2) cube centres."""
        return np.array([self.scene.pose_xy_yaw(b)[0] for b in self.blocks])

    def zone_distances(self) -> np.ndarray:
        """(n_blocks,) xy distance of each cube to its colour's zone centre, metres."""
        return np.linalg.norm(self.block_xy() - self.zone_xy[self.block_colour], axis=1)

    def _state_observation(self) -> dict[str, np.ndarray]:
        state: dict[str, np.ndarray] = {}
        for i, block in enumerate(self.blocks):
            state[f"block{i}_translation"], state[f"block{i}_orientation"] = self.scene.pose_xy_yaw(block)
        state.update(self._effector_observation())
        state.update({f"zone{c}_translation": xy for c, xy in enumerate(self.zone_xy)})
        return state

    def _evaluate(self):
        n_sorted = int(np.sum(self.zone_distances() < self.goal_tolerance))
        return n_sorted / self.n_blocks, n_sorted == self.n_blocks, {"n_sorted": n_sorted}


SLOT_SPACING = 0.056  # m between the slot points of one zone (cubes are 0.04 m)
SLOT_DONE = 0.01  # m from its slot point at which a pushed cube counts as placed
SORTED_MARGIN = 0.005  # m inside the zone edge beyond which a cube needs no (re-)sorting
BACK_OFF = 0.08  # m the tip backs away from a placed cube along the push line
HOME_XY = np.array([0.2, 0.0])  # safe point between cubes, on the robot side of the reset area
TIP_CHECK = 0.045  # m: free tip moves keep this far from cube centres (half-diagonal 0.028 + tip)
TIP_CLEARANCE = 0.06  # m from a cube centre to the via points of free moves round it
PATH_CHECK = 0.075  # m: a pushed cube passes other cube centres this far, or via a side point
NO_ORIENT_NEAR = 0.1  # m from its slot within which a cube is pushed without turning it first
GIVE_UP_STEPS = 150  # a cube not placed after this many steps goes to the back of the queue


class SortOracle(BlockOracle):
    """Sorts the cubes one at a time, in an order drawn from the env's ``np_random`` at ``reset``.

    Each cube is pushed with ``BlockPusher`` (turning it first only if ``orient``, and never
    within ``NO_ORIENT_NEAR`` of its slot) to a slot point of its zone, through a via point when
    another cube is in the way; the oracle itself steers the tip to the pre-push point, round
    every cube (``tip_path_waypoint``). A zone's slots lie on the line through its centre pointing
    away from the block area, ``SLOT_SPACING`` apart; a cube takes the outermost slot that no
    other cube occupies, so later cubes of that colour stop short of earlier ones. Between cubes
    the tip backs off 0.08 m along the push line, then returns to ``HOME_XY`` — or, with
    ``via_home=False``, heads from the back-off point straight for the next cube's pre-push point.
    A cube knocked out of its zone is sorted again; a cube whose pre-push point another cube
    covers waits its turn.

    ``via_home=False`` is the variant to clone from: the trip home is a phase the observation
    does not show (the same tip position is left towards home after one cube and towards the
    next cube after the other), and under action noise the many steps near the home waypoint
    are labelled "return to it" (measured: policies cloned from noise-injected demonstrations
    park there). The default keeps the recorded datasets reproducible.

    ``order``: "random" (default), the drawn order — demonstrations that are multimodal in which
    cube comes next; or "nearest", each time the unsorted cube nearest the tip (cubes given up
    on last) — a next cube that the observation decides.

    Attributes: ``order``, the episode's sorting order as a tuple of cube indices ("random"),
    or None ("nearest").
    """

    ORDERS = ("random", "nearest")

    def __init__(self, env, noise_std: float = 0.0, orient: bool = False,
                 via_home: bool = True, order: str = "random") -> None:
        super().__init__(env, noise_std=noise_std, orient=orient)
        if order not in self.ORDERS:
            raise ValueError(f"order={order!r} is not one of {self.ORDERS}")
        self.via_home, self.order_rule = bool(via_home), order

    def reset(self) -> None:
        n = self.env.n_blocks
        self.order = (tuple(int(i) for i in self.env.np_random.permutation(n))
                      if self.order_rule == "random" else None)
        self._queue, self._give_ups = list(self.order or range(n)), [0] * n
        self.phase = "select"  # select -> push -> back -> home (if via_home) -> select ...
        self.current, self.goals = None, []  # the cube being sorted, its [via point..., slot point]
        self.pusher, self._steps, self._waypoint = self._pusher(), 0, HOME_XY

    def slot_points(self, colour: int) -> np.ndarray:
        """(n_blocks_per_colour, 2) slot points of a zone, outermost first."""
        env, n = self.env, self.env.n_blocks_per_colour
        zone = env.zone_xy[colour]
        outward = unit(zone - BLOCK_AREA_CENTRE)
        reach = env.goal_tolerance - SORTED_MARGIN - SLOT_DONE  # outermost slot: placed ⇒ sorted
        spacing = min(SLOT_SPACING, 2 * reach / max(n - 1, 1))
        return zone + (spacing * ((n - 1) / 2 - np.arange(n)))[:, None] * outward

    def _plan(self, i: int, blocks: np.ndarray) -> tuple[list[np.ndarray], bool]:
        """Goals of cube ``i`` (a via point maybe, then the outermost free slot of its zone) and
        whether the first pre-push point is clear of the other cubes."""
        others = np.delete(blocks, i, axis=0)
        slots = self.slot_points(self.env.block_colour[i])
        free = [s for s in slots if np.min(np.linalg.norm(others - s, axis=1)) > TIP_CHECK]
        slot = free[0] if free else slots[-1]
        in_way = [o for o in others if np.linalg.norm(o - slot) > PATH_CHECK]
        goals = via_points(blocks[i], slot, in_way, clearance=PATH_CHECK)
        pre_push = blocks[i] - PRE_PUSH_OFFSET * unit(goals[0] - blocks[i])
        return goals, bool(np.min(np.linalg.norm(others - pre_push, axis=1)) > TIP_CHECK)

    def _select(self, blocks: np.ndarray, effector: np.ndarray) -> bool:
        """Starts on the first unsorted cube of the queue that can be approached (else the first
        unsorted one); False when all are sorted."""
        if self.order_rule == "nearest":  # cubes given up on fewer times first, then nearest
            self._queue.sort(key=lambda i: (self._give_ups[i], np.linalg.norm(blocks[i] - effector)))
        unsorted = self.env.zone_distances() >= self.env.goal_tolerance - SORTED_MARGIN
        plans = [(i, *self._plan(i, blocks)) for i in self._queue if unsorted[i]]
        if not plans:
            return False
        self.current, self.goals, _ = next((plan for plan in plans if plan[2]), plans[0])
        self.pusher, self.phase, self._steps = self._pusher(), "push", 0
        return True

    def _action(self, effector: np.ndarray) -> np.ndarray:
        blocks = self.env.block_xy()
        if self.phase == "select" and not self._select(blocks, effector):
            return np.zeros(2)
        if self.phase == "push":
            action = self._push(effector, blocks)
            if action is not None:
                return action
        if np.linalg.norm(effector - self._waypoint) < 0.005:
            if self.phase == "home" or not self.via_home:
                self.phase = "select"
                return self._action(effector)
            self.phase, self._waypoint = "home", HOME_XY
        return step_towards(effector, tip_path_waypoint(effector, self._waypoint, blocks), MOVE_SPEED)

    def _push(self, effector: np.ndarray, blocks: np.ndarray) -> np.ndarray | None:
        """The next action pushing the current cube, or None once it is placed (or given up)."""
        xy, yaw = self._pose(self.env.blocks[self.current])
        self._steps += 1
        if len(self.goals) > 1 and np.linalg.norm(xy - self.goals[0]) < 0.03:
            self.goals.pop(0)
        placed = np.linalg.norm(xy - self.goals[-1]) < SLOT_DONE
        if placed or self._steps > GIVE_UP_STEPS:
            if not placed:  # try the others first
                self._give_ups[self.current] += 1
                self._queue.remove(self.current)
                self._queue.append(self.current)
            back = xy + BACK_OFF * unit(effector - xy)
            clear = np.min(np.linalg.norm(np.delete(blocks, self.current, 0) - back, axis=1)) > TIP_CHECK
            if clear:
                self.phase, self._waypoint = "back", back
            else:  # no room to back off: go home, or straight on to the next cube
                self.phase, self._waypoint = ("home", HOME_XY) if self.via_home else ("back", effector)
            return None
        # never turn a cube next to its slot, where circling it would shove the cubes sorted there
        self.pusher.orient = self.orient and np.linalg.norm(xy - self.goals[-1]) > NO_ORIENT_NEAR
        if self.pusher.phase == "approach":
            pre_push = xy - PRE_PUSH_OFFSET * unit(self.goals[0] - xy)
            if np.linalg.norm(effector - pre_push) >= ARRIVAL_RADIUS:
                return step_towards(effector, tip_path_waypoint(effector, pre_push, blocks), MOVE_SPEED)
        return self.pusher.action(effector, xy, yaw, self.goals[0])




def tip_path_waypoint(start: np.ndarray, goal: np.ndarray, blocks: np.ndarray,
                      check: float = TIP_CHECK, ring: float = TIP_CLEARANCE) -> np.ndarray:
    """The next waypoint of the shortest tip path from ``start`` to ``goal`` that stays ``check``
    metres from every cube centre: a visibility graph over 8 points on a ``ring``-radius circle
    round each cube (Dijkstra). A path may leave or enter a cube's ``check`` circle where its
    end lies inside it but never goes deeper. Returns ``goal`` itself when no path exists."""
    blocks = np.asarray(blocks, dtype=np.float64).reshape(-1, 2)
    angles = np.arange(8) * (math.pi / 4)
    circle = ring * np.stack([np.cos(angles), np.sin(angles)], 1)
    nodes = np.vstack([start, goal, (blocks[:, None] + circle[None]).reshape(-1, 2)])
    depth = np.linalg.norm(nodes[:, None] - blocks[None], axis=-1)  # (nodes, cubes)
    keep = (np.arange(len(nodes)) < 2) | np.all(depth >= check, axis=1)  # ring points off cubes
    nodes, depth = nodes[keep], depth[keep]
    p, segment = nodes[:, None, None], nodes[None, :, None] - nodes[:, None, None]
    length2 = np.maximum(np.sum(segment ** 2, -1), 1e-12)
    t = np.clip(np.sum((blocks[None, None] - p) * segment, -1) / length2, 0, 1)
    gap = np.linalg.norm(p + t[..., None] * segment - blocks[None, None], axis=-1)
    limit = np.minimum(check, np.minimum(depth[:, None], depth[None, :])) - 1e-9
    cost = np.where(np.any(gap < limit, -1), np.inf, np.sqrt(length2[..., 0]))
    distance, previous = np.full(len(nodes), np.inf), np.full(len(nodes), -1)
    distance[0], done = 0.0, np.zeros(len(nodes), bool)
    while not done[1]:
        u = int(np.argmin(np.where(done, np.inf, distance)))
        if done[u] or not np.isfinite(distance[u]):
            return goal  # the goal is cut off
        done[u] = True
        better = distance[u] + cost[u] < distance
        distance[better], previous[better] = distance[u] + cost[u][better], u
    node = 1
    while previous[node] != 0:
        node = previous[node]
    return nodes[node]
