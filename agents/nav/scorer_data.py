"""Training data of the instruction–path scorer, generated from the train houses.

A *group* is one instruction with candidate paths, the first of which fits it:

* full groups: a sampled Room-to-Room episode's shortest path against its prefixes,
  overshoots and branches towards other viewpoints (teaches where to stop);
* prefix groups: a correct partial path ``path[:j]`` against paths that leave it and against
  the shorter prefix (teaches which way to go while the goal is still ahead).

The corpus holds every viewpoint's panorama features (at ``SCORER_PANORAMA``) once, and is cached as
one ``.npz`` (written under a temporary name, then renamed).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from worldsim.agents.nav.features import panorama_features
from worldsim.agents.nav.paths import full_path_negatives, path_geometry, prefix_negatives
from worldsim.agents.nav.scorer import SCORER_PANORAMA
from worldsim.agents.nav.text import Vocabulary
from worldsim.envs.navigation.scene import load_scene
from worldsim.envs.navigation.tasks import EpisodeSamplingError, sample_instruction_episode


@dataclasses.dataclass
class ScorerCorpus:
    """features (N, FEATURES) float16 panorama features and positions (N, 3) float32 of
    every viewpoint of every house; offsets: house seed → row of its node 0; groups: dicts
    with "house", "instructions" and "candidates" (lists of node ids, positive first)."""

    features: np.ndarray
    positions: np.ndarray
    offsets: dict[int, int]
    groups: list[dict]

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        meta = json.dumps({"offsets": {str(k): v for k, v in self.offsets.items()}, "groups": self.groups})
        np.savez(tmp, features=self.features, positions=self.positions,
                 meta=np.array(meta))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ScorerCorpus":
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            return cls(data["features"], data["positions"],
                       {int(k): v for k, v in meta["offsets"].items()}, meta["groups"])


def build_corpus(house_seeds, episodes_per_house: int, negatives: int, seed: int,
                 progress: bool = True) -> ScorerCorpus:
    """Renders every house's viewpoints and samples ``episodes_per_house`` full groups and as
    many prefix groups in each, with ``negatives`` counter-example paths per group."""
    features, positions, offsets, groups = [], [], {}, []
    rng = np.random.default_rng(seed)
    for house_seed in tqdm(list(house_seeds), desc="scorer corpus", disable=not progress):
        scene = load_scene(int(house_seed))
        offsets[int(house_seed)] = sum(len(f) for f in features)
        nodes = sorted(scene.graph.nodes)
        panoramas = [scene.panorama(n, *SCORER_PANORAMA) for n in nodes]
        features.append(panorama_features(np.stack([p["semantic"] for p in panoramas]),
                                          np.stack([p["depth"] for p in panoramas])).astype(np.float16))
        positions.append(np.stack([scene.position(n) for n in nodes]).astype(np.float32))
        for _ in range(episodes_per_house):
            try:
                episode = sample_instruction_episode(scene, rng, "train")
            except EpisodeSamplingError:
                break
            path = list(episode.reference_path)
            texts = list(episode.instructions)
            groups.append({"house": int(house_seed), "instructions": texts,
                           "candidates": [path] + full_path_negatives(scene, path, rng, negatives)})
            prefix = path[: int(rng.integers(2, len(path)))]
            groups.append({"house": int(house_seed), "instructions": texts,
                           "candidates": [prefix] + prefix_negatives(scene, prefix, rng, negatives)})
    return ScorerCorpus(np.concatenate(features), np.concatenate(positions),
                        offsets, groups)


def encode_paths(paths: list[list[int]], positions: np.ndarray, max_nodes: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(C, P) node rows, (C, P, 3) geometry and (C, P) mask for ``paths`` of rows of
    ``positions``; paths longer than ``max_nodes`` keep their last ``max_nodes`` viewpoints."""
    nodes = np.zeros((len(paths), max_nodes), np.int32)
    geometry = np.zeros((len(paths), max_nodes, 3), np.float32)
    mask = np.zeros((len(paths), max_nodes), bool)
    for i, path in enumerate(paths):
        path = list(path)[-max_nodes:]
        nodes[i, : len(path)] = path
        geometry[i, : len(path)] = path_geometry(positions[path])
        mask[i, : len(path)] = True
    return nodes, geometry, mask


class ScorerBatches:
    """Deterministic batches of groups: ``batch_at(step)`` depends only on (seed, step)."""

    def __init__(self, corpus: ScorerCorpus, vocabulary: Vocabulary, groups_per_batch: int,
                 candidates: int, max_nodes: int, max_tokens: int, blind_probability: float, seed: int):
        if not 0.0 <= blind_probability <= 1.0:
            raise ValueError(f"blind_probability must be in [0, 1], got {blind_probability}.")
        self.corpus, self.vocabulary = corpus, vocabulary
        self.groups_per_batch, self.candidates = groups_per_batch, candidates
        self.max_nodes, self.max_tokens = max_nodes, max_tokens
        self.blind_probability, self.seed = blind_probability, seed
        most_nodes = max(len({n for c in g["candidates"] for n in c}) for g in corpus.groups)
        self.panoramas_per_batch = groups_per_batch * most_nodes

    def batch_at(self, step: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, step])
        chosen = rng.choice(len(self.corpus.groups), self.groups_per_batch, replace=False)
        rows: list[int] = []
        parts = {"tokens": [], "path_nodes": [], "path_geometry": [], "path_mask": []}
        for index in chosen:
            group = self.corpus.groups[index]
            offset = self.corpus.offsets[group["house"]]
            candidates = [[offset + n for n in path] for path in group["candidates"][: self.candidates]]
            local = {row: i + len(rows) for i, row in enumerate(sorted({r for c in candidates for r in c}))}
            rows += sorted(local, key=local.get)
            nodes, geometry, mask = encode_paths(candidates, self.corpus.positions, self.max_nodes)
            pad = self.candidates - len(candidates)
            nodes = np.vectorize(lambda r: local.get(r, 0))(nodes) * mask
            parts["path_nodes"].append(np.pad(nodes, ((0, pad), (0, 0))))
            parts["path_geometry"].append(np.pad(geometry, ((0, pad), (0, 0), (0, 0))))
            parts["path_mask"].append(np.pad(mask, ((0, pad), (0, 0))))
            text = group["instructions"][int(rng.integers(len(group["instructions"])))]
            parts["tokens"].append(self.vocabulary.encode(text, self.max_tokens))
        rows_array = np.zeros(self.panoramas_per_batch, np.int64)
        rows_array[: len(rows)] = rows
        batch = {key: np.stack(value) for key, value in parts.items()}
        batch["panorama_features"] = self.corpus.features[rows_array]
        batch["blind"] = rng.random(self.groups_per_batch) < self.blind_probability
        return batch
