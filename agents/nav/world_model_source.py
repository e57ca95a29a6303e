"""The ``world_model`` observation source: the look-ahead planner imagines what it has not seen.

The source keeps a point-cloud memory of the real panoramas at the viewpoints the agent has
visited in the current episode. When the planner asks for a viewpoint it has visited, it gets
the real panorama; for any other viewpoint, the memory is re-projected there as guidance and
the world model's structure generator predicts the panorama's classes and depth (``latent``:
one latent sample, seeded per episode, or the prior mean). Each candidate viewpoint is
predicted from real observations only (not from the model's own earlier predictions along the
candidate path).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from worldsim.agents.nav.scorer import SCORER_PANORAMA
from worldsim.envs.navigation.env import IndoorNavEnv
from worldsim.worldmodel.data import guidance_options
from worldsim.worldmodel.memory import PointCloudMemory
from worldsim.worldmodel.training import load_world_model

BATCH_BUCKET = 8
LATENTS = ("sample", "mean")


class WorldModelSource:
    """Real panoramas where the agent has been, the world model's predictions elsewhere."""

    name, blind = "world_model", False

    def __init__(self, workdir, seed: int = 0, latent: str = "sample"):
        if latent not in LATENTS:
            raise ValueError(f"latent={latent!r} is not one of {LATENTS}.")
        model, meta, config = load_world_model(workdir)
        self._guidance_options = guidance_options(config)  # as in training and evaluation
        self.height, self.width = (int(v) for v in meta["panorama_size"])
        if self.height % SCORER_PANORAMA[0] or self.width % SCORER_PANORAMA[1]:
            raise ValueError(f"world model panoramas {self.height}×{self.width} must be multiples of "
                             f"the scorer's {SCORER_PANORAMA[0]}×{SCORER_PANORAMA[1]}.")
        graphdef, self._state = nnx.split(model.structure)
        self._predict = jax.jit(
            lambda state, guidance, key: nnx.merge(graphdef, state)(guidance, key=key, sample=latent == "sample")[0])
        self.seed = seed
        self._episode = None

    def _sync(self, env: IndoorNavEnv) -> None:
        """Starts a new memory for a new episode and adds the viewpoints visited since."""
        episode = (env.episode.house_seed, env.episode.start, env.episode.reference_path)
        if episode != self._episode:
            self._episode, self._memory, self._added = episode, PointCloudMemory(), set()
            self._predictions: dict[tuple[int, int], dict[str, np.ndarray]] = {}
            self._key = jax.random.fold_in(jax.random.key(self.seed), env.episode.house_seed * 4099 + env.episode.start)
        for node in env.path:
            if node not in self._added:
                view = env.scene.panorama(node, self.height, self.width)
                self._memory.add(view["rgb"], view["semantic"], view["depth"], env.scene.position(node))
                self._added.add(node)

    def _downsample(self, image: np.ndarray) -> np.ndarray:
        step_h, step_w = self.height // SCORER_PANORAMA[0], self.width // SCORER_PANORAMA[1]
        return image[..., step_h // 2::step_h, step_w // 2::step_w]

    def _imagine(self, env: IndoorNavEnv, nodes: list[int]) -> None:
        """Predicts and caches the panoramas at ``nodes`` from the current memory."""
        guides = [self._memory.reproject(env.scene.position(n), self.height, self.width,
                                         **self._guidance_options) for n in nodes]
        count = -(-len(nodes) // BATCH_BUCKET) * BATCH_BUCKET
        guidance = {key: jnp.stack([g[key] for g in guides] + [guides[0][key]] * (count - len(nodes)))
                    for key in ("semantic", "depth", "mask")}
        self._key, key = jax.random.split(self._key)
        outputs = self._predict(self._state, guidance, key)
        semantic = np.asarray(jnp.argmax(outputs["semantic_logits"], -1)).astype(np.uint8)
        depth = np.asarray(outputs["depth"], np.float32)
        for i, node in enumerate(nodes):
            self._predictions[(node, len(self._added))] = {
                "semantic": self._downsample(semantic[i]), "depth": self._downsample(depth[i])}

    def panoramas(self, env: IndoorNavEnv, nodes: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(semantic (n, h, w) uint8, depth (n, h, w) float32) at ``nodes``, scorer-sized."""
        self._sync(env)
        version = len(self._added)
        missing = [n for n in nodes if n not in self._added and (n, version) not in self._predictions]
        if missing:
            self._imagine(env, missing)
        views = []
        for node in nodes:
            if node in self._added:
                views.append(env.scene.panorama(node, *SCORER_PANORAMA))
            else:
                views.append(self._predictions[(node, version)])
        return np.stack([v["semantic"] for v in views]), np.stack([v["depth"] for v in views])
