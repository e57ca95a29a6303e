"""The instruction–path compatibility scorer: does this path fit this instruction?

Two encoders meet in a shared space; the score is a scaled cosine similarity.

* Instruction: word embeddings + learned positions → pre-LayerNorm transformer → masked mean.
* Path: one token per viewpoint = (panorama embedding, or a learned "unseen" vector when the
  path is scored without observations) ⊕ the move's geometry (turn relative to the previous
  move as sin/cos, step length), + learned step positions → transformer → masked mean.
* Panoramas (semantic ids and range depth at ``SCORER_PANORAMA`` pixels) are pooled into
  fixed per-sector class and depth features (``features.py``) and embedded by an MLP; each
  distinct viewpoint is encoded once per batch. (A CNN on the 32×64 panoramas cost 4 s per
  training step on 2 loaded CPU cores; with pooling first a step takes 0.4 s.)

``scores, aux = model(batch)`` takes a batch of *groups* — one instruction and its candidate
paths — and returns (G, C) scores; aux carries the in-batch cross scores used by the loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from worldsim.agents.nav.features import FEATURES

SCORER_PANORAMA = (32, 64)
MAX_TOKENS = 64
MAX_PATH_NODES = 32
GEOMETRY_FEATURES = 3


class TransformerBlock(nnx.Module):
    def __init__(self, width: int, heads: int, rngs: nnx.Rngs):
        self.norm1 = nnx.LayerNorm(width, rngs=rngs)
        self.attention = nnx.MultiHeadAttention(heads, width, decode=False, rngs=rngs)
        self.norm2 = nnx.LayerNorm(width, rngs=rngs)
        self.mlp1 = nnx.Linear(width, 2 * width, rngs=rngs)
        self.mlp2 = nnx.Linear(2 * width, width, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        """x: (..., T, D); mask: (..., T) bool."""
        pair_mask = mask[..., None, None, :] & mask[..., None, :, None]
        x = x + self.attention(self.norm1(x), mask=pair_mask)
        return x + self.mlp2(jax.nn.gelu(self.mlp1(self.norm2(x))))


def _masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    weights = mask[..., None].astype(x.dtype)
    return (x * weights).sum(-2) / jnp.maximum(weights.sum(-2), 1.0)


class PanoramaEncoder(nnx.Module):
    """(N, FEATURES) pooled panorama features (``features.panorama_features``) → (N, width)."""

    def __init__(self, width: int, rngs: nnx.Rngs):
        self.norm = nnx.LayerNorm(FEATURES, rngs=rngs)
        self.hidden = nnx.Linear(FEATURES, 2 * width, rngs=rngs)
        self.out = nnx.Linear(2 * width, width, rngs=rngs)

    def __call__(self, features: jax.Array) -> jax.Array:
        return self.out(jax.nn.gelu(self.hidden(self.norm(features.astype(jnp.float32)))))


class InstructionPathScorer(nnx.Module):
    def __init__(self, vocabulary_size: int, rngs: nnx.Rngs, width: int = 128, heads: int = 4,
                 layers: int = 2):
        self.words = nnx.Embed(vocabulary_size, width, rngs=rngs)
        self.word_positions = nnx.Param(0.02 * jax.random.normal(rngs.params(), (MAX_TOKENS, width)))
        self.text_blocks = nnx.List([TransformerBlock(width, heads, rngs) for _ in range(layers)])
        self.text_out = nnx.Linear(width, width, rngs=rngs)
        self.panoramas = PanoramaEncoder(width, rngs)
        self.unseen = nnx.Param(jnp.zeros((width,)))
        self.step_in = nnx.Linear(width + GEOMETRY_FEATURES, width, rngs=rngs)
        self.step_positions = nnx.Param(0.02 * jax.random.normal(rngs.params(), (MAX_PATH_NODES, width)))
        self.path_blocks = nnx.List([TransformerBlock(width, heads, rngs) for _ in range(layers)])
        self.path_out = nnx.Linear(width, width, rngs=rngs)
        self.log_scale = nnx.Param(jnp.log(jnp.asarray(10.0)))

    def encode_instruction(self, tokens: jax.Array) -> jax.Array:
        """(..., L) token ids → (..., D) unit vectors."""
        mask = tokens > 0
        x = self.words(tokens) + self.word_positions[: tokens.shape[-1]]
        for block in self.text_blocks:
            x = block(x, mask)
        return _unit(self.text_out(_masked_mean(x, mask)))

    def encode_paths(self, node_embeddings: jax.Array, geometry: jax.Array, mask: jax.Array,
                     blind: jax.Array) -> jax.Array:
        """node_embeddings (..., P, D), geometry (..., P, 3), mask (..., P), blind (...) bool
        → (..., D) unit vectors."""
        seen = jnp.where(blind[..., None, None], self.unseen[...], node_embeddings)
        x = self.step_in(jnp.concatenate([seen, geometry], axis=-1))
        x = x + self.step_positions[: x.shape[-2]]
        for block in self.path_blocks:
            x = block(x, mask)
        return _unit(self.path_out(_masked_mean(x, mask)))

    def __call__(self, batch: dict[str, jax.Array]) -> tuple[jax.Array, dict[str, jax.Array]]:
        """batch: tokens (G, L); panorama_features (N, FEATURES); path_nodes (G, C, P) indices
        into the N panoramas; path_geometry (G, C, P, 3); path_mask (G, C, P); blind (G,).
        Returns scores (G, C) and aux {"cross_scores": (G, G) instruction g vs group h's first
        path, encoded the way group g is (blind or not)}."""
        text = self.encode_instruction(batch["tokens"])
        pano = self.panoramas(batch["panorama_features"])
        nodes = pano[batch["path_nodes"]]  # (G, C, P, D)
        scale = jnp.exp(self.log_scale[...])
        encoded = {
            mode: self.encode_paths(nodes, batch["path_geometry"], batch["path_mask"],
                                    jnp.full(batch["blind"].shape[:1] + nodes.shape[1:2], mode))
            for mode in (False, True)}
        paths = jnp.where(batch["blind"][:, None, None], encoded[True], encoded[False])
        scores = scale * jnp.einsum("gd,gcd->gc", text, paths)
        first = jnp.where(batch["blind"][:, None, None], encoded[True][None, :, 0],
                          encoded[False][None, :, 0])  # (G, H, D)
        cross = scale * jnp.einsum("gd,ghd->gh", text, first)
        return scores, {"cross_scores": cross}


def _unit(x: jax.Array) -> jax.Array:
    # rsqrt with an epsilon, not x / max(norm, eps): the norm's gradient at 0 is NaN, and
    # padded (all-masked) paths encode to exactly 0.
    return x * jax.lax.rsqrt(jnp.sum(x * x, axis=-1, keepdims=True) + 1e-12)


def contrastive_loss(model: InstructionPathScorer, batch, key) -> tuple[jax.Array, dict]:
    """InfoNCE per group: the group's first path is the positive; the other candidate paths
    (hard negatives) and the other groups' positives (in-batch negatives) compete with it."""
    del key
    scores, aux = model(batch)
    scores = jnp.where(batch["path_mask"].any(-1), scores, -1e9)  # padded candidates
    groups = scores.shape[0]
    cross = jnp.where(jnp.eye(groups, dtype=bool), -1e9, aux["cross_scores"])
    logits = jnp.concatenate([scores, cross], axis=1)
    loss = -jax.nn.log_softmax(logits, axis=1)[:, 0]
    hard_accuracy = (scores.argmax(1) == 0).astype(jnp.float32)
    blind = batch["blind"].astype(jnp.float32)
    metrics = {
        "hard_accuracy_seen": (hard_accuracy * (1 - blind)).sum() / jnp.maximum((1 - blind).sum(), 1),
        "hard_accuracy_blind": (hard_accuracy * blind).sum() / jnp.maximum(blind.sum(), 1),
    }
    return loss.mean(), metrics
