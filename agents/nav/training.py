"""The scorer's ``TrainTask`` for the shared loop, and loading a trained scorer back.

    worldsim train --config configs/nav/scorer.py --workdir runs/nav_scorer
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ml_collections
from flax import nnx

from worldsim.agents.nav.scorer import MAX_TOKENS, InstructionPathScorer, contrastive_loss
from worldsim.agents.nav.scorer_data import ScorerBatches, ScorerCorpus, build_corpus
from worldsim.agents.nav.text import Vocabulary
from worldsim.envs.navigation.scene import SPLITS
from worldsim.train.loop import TrainTask, restore_trained_model


def _corpus(config: ml_collections.ConfigDict) -> ScorerCorpus:
    """The cached corpus at ``config.data.cache``, built (and cached) when missing."""
    data = config.data
    train_houses = SPLITS["train"]
    if data.num_houses > len(train_houses):
        raise ValueError(f"data.num_houses={data.num_houses}, but the train split has only "
                         f"{len(train_houses)} houses.")
    path = Path(data.cache)
    if path.exists():
        corpus = ScorerCorpus.load(path)
        expected = set(train_houses[: data.num_houses])
        if set(corpus.offsets) != expected:
            raise ValueError(f"{path} was built from {len(corpus.offsets)} other houses than "
                             f"data.num_houses={data.num_houses}; delete it or set data.cache.")
        return corpus
    corpus = build_corpus(train_houses[: data.num_houses], data.episodes_per_house,
                          data.negatives, seed=config.seed)
    corpus.save(path)
    return corpus


def build_scorer(config: ml_collections.ConfigDict, meta: dict[str, Any]) -> InstructionPathScorer:
    model = config.model
    return InstructionPathScorer(len(meta["vocabulary"]), nnx.Rngs(config.seed), width=model.width,
                                 heads=model.heads, layers=model.layers)


def make_train_task(config: ml_collections.ConfigDict) -> TrainTask:
    corpus = _corpus(config)
    vocabulary = Vocabulary.from_texts(t for g in corpus.groups for t in g["instructions"])
    batches = ScorerBatches(corpus, vocabulary, config.data.groups_per_batch,
                            1 + config.data.negatives, config.data.max_path_nodes, MAX_TOKENS,
                            config.data.blind_probability, config.seed)
    meta = {"agent": "nav_scorer", "vocabulary": vocabulary.tokens, "num_groups": len(corpus.groups)}
    return TrainTask(model=build_scorer(config, meta), loss_fn=contrastive_loss,
                     batch_at=batches.batch_at, meta=meta)


def load_scorer(workdir: str | Path, step: int | None = None
                ) -> tuple[InstructionPathScorer, Vocabulary, ml_collections.ConfigDict]:
    """(model, vocabulary, config) of a trained scorer run."""
    model, meta, config = restore_trained_model(workdir, build_scorer, step)
    if meta.get("agent") != "nav_scorer":
        raise ValueError(f"{workdir} holds a {meta.get('agent')!r} run, not an instruction–path scorer.")
    return model, Vocabulary(meta["vocabulary"][2:]), config
