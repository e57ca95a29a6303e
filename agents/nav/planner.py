"""The look-ahead planner and the observation sources it can plan with.

At every decision the planner enumerates the simple continuations of the path walked so far
up to ``horizon`` viewpoints ahead on the navigation graph, asks its *observation source* for
the panoramas of every viewpoint involved, scores each (walked path + continuation) and the
walked path itself against the instruction, and moves one step along the best continuation —
or stops when the walked path itself scores best.

Sources:

* ``ground_truth`` — renders the real panoramas along each candidate (planning by moving);
* ``baseline`` — the graph alone: the scorer sees turns and distances, no panorama;
* ``world_model`` — real panoramas where the agent has been, the world model's predictions
  everywhere else (``world_model_source.py``).
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from worldsim.agents.nav.features import panorama_features
from worldsim.agents.nav.paths import extensions
from worldsim.agents.nav.scorer import MAX_PATH_NODES, MAX_TOKENS, SCORER_PANORAMA, InstructionPathScorer
from worldsim.agents.nav.scorer_data import encode_paths
from worldsim.agents.nav.text import Vocabulary
from worldsim.envs.navigation.env import STOP, IndoorNavEnv

SOURCES = ("ground_truth", "baseline", "world_model")


class GroundTruthSource:
    """The real panoramas, rendered by the house's ray caster (cached per viewpoint)."""

    name, blind = "ground_truth", False

    def __init__(self):
        self._cache: dict[tuple[int, int], dict[str, np.ndarray]] = {}

    def panoramas(self, env: IndoorNavEnv, nodes: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(semantic (n, h, w) uint8, depth (n, h, w) float32) at ``nodes``."""
        house = env.scene.house.seed
        for node in nodes:
            if (house, node) not in self._cache:
                self._cache[(house, node)] = env.scene.panorama(node, *SCORER_PANORAMA)
        views = [self._cache[(house, n)] for n in nodes]
        return np.stack([v["semantic"] for v in views]), np.stack([v["depth"] for v in views])


class BaselineSource:
    """No observations: the scorer gets its learned "unseen" vector for every viewpoint."""

    name, blind = "baseline", True

    def panoramas(self, env: IndoorNavEnv, nodes: list[int]) -> tuple[np.ndarray, np.ndarray]:
        shape = (len(nodes), *SCORER_PANORAMA)
        return np.zeros(shape, np.uint8), np.zeros(shape, np.float32)


def make_source(name: str, world_model_workdir=None, world_model_latent: str = "sample"):
    """The observation source called ``name`` (one of ``SOURCES``); ``world_model`` needs the
    workdir of a trained world model (``worldsim train --config configs/worldmodel/cpu.py``)
    and predicts with one latent sample or the prior mean (``world_model_latent``)."""
    if name == "ground_truth":
        return GroundTruthSource()
    if name == "baseline":
        return BaselineSource()
    if name == "world_model":
        if world_model_workdir is None:
            raise ValueError("the world_model source needs a trained world model: pass "
                             "--world-model WORKDIR (train one with worldsim train --config "
                             "configs/worldmodel/cpu.py).")
        from worldsim.agents.nav.world_model_source import WorldModelSource
        return WorldModelSource(world_model_workdir, latent=world_model_latent)
    raise ValueError(f"Unknown observation source {name!r}. Known sources: {', '.join(SOURCES)}.")


def _bucket(size: int, step: int) -> int:
    return max(step, -(-size // step) * step)


class LookAheadPlanner:
    """Acts in an ``IndoorNavEnv`` by scoring look-ahead candidates (module docstring)."""

    def __init__(self, scorer: InstructionPathScorer, vocabulary: Vocabulary, source, horizon: int = 3):
        if not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}.")
        self.vocabulary, self.source, self.horizon = vocabulary, source, horizon
        graphdef, self._state = nnx.split(scorer)
        self._score = jax.jit(lambda state, batch: nnx.merge(graphdef, state)(batch)[0][0])
        self.tokens = None

    def reset(self, env: IndoorNavEnv) -> None:
        self.tokens = self.vocabulary.encode(env.episode.instructions[0], MAX_TOKENS)

    def candidates(self, env: IndoorNavEnv) -> list[list[int]]:
        """The walked path (stopping) and its continuations up to the horizon."""
        walked = list(env.path)
        return [walked] + extensions(env.scene.graph, walked, self.horizon)

    def scores(self, env: IndoorNavEnv, paths: list[list[int]]) -> np.ndarray:
        """(len(paths),) scores of ``paths`` against the episode's instruction."""
        nodes = sorted({n for path in paths for n in path})
        row = {node: i for i, node in enumerate(nodes)}
        features = panorama_features(*self.source.panoramas(env, nodes))
        positions = np.stack([env.scene.position(n) for n in nodes]).astype(np.float32)
        local_paths = [[row[n] for n in path] for path in paths]
        path_nodes, geometry, mask = encode_paths(local_paths, positions, MAX_PATH_NODES)
        count, panoramas = _bucket(len(paths), 32), _bucket(len(nodes), 32)
        pad = count - len(paths)
        batch = {
            "tokens": self.tokens[None],
            "panorama_features": np.pad(features, ((0, panoramas - len(nodes)), (0, 0))),
            "path_nodes": np.pad(path_nodes, ((0, pad), (0, 0)))[None],
            "path_geometry": np.pad(geometry, ((0, pad), (0, 0), (0, 0)))[None],
            "path_mask": np.pad(mask, ((0, pad), (0, 0)))[None],
            "blind": np.array([self.source.blind]),
        }
        return np.asarray(self._score(self._state, batch))[: len(paths)]

    def act(self, env: IndoorNavEnv, obs=None) -> int:
        paths = self.candidates(env)
        best = paths[int(np.argmax(self.scores(env, paths)))]
        if len(best) == len(env.path):
            return STOP
        return env.neighbors().index(best[len(env.path)]) + 1
