"""TokenLearner (Ryoo et al. 2021) v1 and v1.1, and TokenFuser.

TokenLearner turns N spatial tokens into S learned tokens, each a weighted pooling of the
(un-normalised) input over space:

- **v1** (the paper's module): attention maps A = sigmoid(conv stack(LN(X))) — four 3×3 convs
  with S channels, no bias, GELU after the first three — and z_s = mean_hw A[s, hw]·X[hw]
  (``pooling="sum"`` gives Scenic's sum pooling). Needs a square token grid.
- **v1.1** (Scenic ``TokenLearnerModuleV11``, RT-1; "works better in general"):
  logits = MLP(LN(X)) with MLP = Dense(64) → GELU → Dropout → Dense(S) → Dropout, softmax over
  the N positions, Z = A·X (each token is a convex combination of input positions).

Inputs: images/feature maps (B, H, W, C) or tokens (B, N, C) → (B, S, C). With ``video=True``
the input is per frame, (B, T, H, W, C) or (B, T, N, C), and S tokens are learned for every
frame → (B, T, S, C) (frames are folded into the batch; the module is shared across frames).

**TokenFuser** maps S processed tokens back onto the N positions of the original input:
Y = sigmoid(MLP(LN(X))) · LN(Mix_S(LN(Z))) where Mix_S is a Dense over the token axis with a
zero-initialised kernel (so Y = 0 and the fused layer starts as the identity); the caller adds
the residual X.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

VERSIONS = ("v1", "v1.1")
_KERNEL_INIT = nnx.initializers.xavier_uniform()
_BIAS_INIT = nnx.initializers.normal(1e-6)


def check_num_tokens(num_tokens: int) -> None:
    if not isinstance(num_tokens, int) or num_tokens < 1:
        raise ValueError(f"num_tokens={num_tokens!r}; it must be an integer ≥ 1 "
                         "(8 or 16 are the usual choices)")


class _Mlp(nnx.Module):
    """Dense(hidden) → GELU → Dropout → Dense(out) → Dropout (Xavier kernels, bias N(0, 1e-6))."""

    def __init__(self, in_features: int, hidden: int, out_features: int, dropout: float,
                 rngs: nnx.Rngs) -> None:
        self.first = nnx.Linear(in_features, hidden, kernel_init=_KERNEL_INIT,
                                bias_init=_BIAS_INIT, rngs=rngs)
        self.second = nnx.Linear(hidden, out_features, kernel_init=_KERNEL_INIT,
                                 bias_init=_BIAS_INIT, rngs=rngs)
        self.dropout = nnx.Dropout(dropout)

    def __call__(self, x, *, train: bool = False, rngs=None):
        h = self.dropout(jax.nn.gelu(self.first(x)), deterministic=not train, rngs=rngs)
        return self.dropout(self.second(h), deterministic=not train, rngs=rngs)


def _flatten_space(x: jax.Array, video: bool) -> tuple[jax.Array, tuple[int, ...]]:
    """(B[, T], H, W, C) or (B[, T], N, C) → (B·T, N, C) and the leading (batch) shape."""
    lead = 2 if video else 1
    if x.ndim not in (lead + 2, lead + 3):
        expected = "(B, T, H, W, C) or (B, T, N, C)" if video else "(B, H, W, C) or (B, N, C)"
        raise ValueError(f"TokenLearner input of shape {x.shape}; expected {expected}")
    return x.reshape(-1, math.prod(x.shape[lead:-1]), x.shape[-1]), x.shape[:lead]


class TokenLearnerV11(nnx.Module):
    """v1.1: softmax-over-space attention from an MLP on LN(X)."""

    def __init__(self, in_features: int, num_tokens: int, *, bottleneck_dim: int = 64,
                 dropout: float = 0.0, rngs: nnx.Rngs) -> None:
        check_num_tokens(num_tokens)
        self.num_tokens = num_tokens
        self.norm = nnx.LayerNorm(in_features, rngs=rngs)
        self.mlp = _Mlp(in_features, bottleneck_dim, num_tokens, dropout, rngs)

    def __call__(self, x: jax.Array, *, video: bool = False, train: bool = False, rngs=None):
        flat, lead = _flatten_space(x, video)                       # (B', N, C)
        logits = self.mlp(self.norm(flat), train=train, rngs=rngs)  # (B', N, S)
        weights = jax.nn.softmax(logits, axis=1)                    # over the N positions
        tokens = jnp.einsum("bns,bnc->bsc", weights, flat)
        return tokens.reshape(*lead, self.num_tokens, x.shape[-1])


class TokenLearnerV1(nnx.Module):
    """v1: sigmoid attention maps from a 3×3 conv stack on LN(X), pooled over space."""

    def __init__(self, in_features: int, num_tokens: int, *, num_convs: int = 4,
                 pooling: str = "mean", rngs: nnx.Rngs) -> None:
        check_num_tokens(num_tokens)
        if pooling not in ("mean", "sum"):
            raise ValueError(f"pooling={pooling!r}; allowed: mean, sum")
        self.num_tokens, self.pooling = num_tokens, pooling
        self.norm = nnx.LayerNorm(in_features, rngs=rngs)
        sizes = [in_features] + [num_tokens] * num_convs
        self.convs = nnx.List([nnx.Conv(a, b, (3, 3), padding="SAME", use_bias=False, rngs=rngs)
                               for a, b in zip(sizes[:-1], sizes[1:])])

    def __call__(self, x: jax.Array, *, video: bool = False, train: bool = False, rngs=None):
        flat, lead = _flatten_space(x, video)
        side = math.isqrt(flat.shape[1])
        if side * side != flat.shape[1]:
            raise ValueError(f"TokenLearner v1 needs a square token grid; got {flat.shape[1]} "
                             "positions per image (use v1.1 for non-square inputs)")
        a = self.norm(flat).reshape(-1, side, side, flat.shape[-1])
        for i, conv in enumerate(self.convs):
            a = conv(a)
            if i < len(self.convs) - 1:
                a = jax.nn.gelu(a)
        weights = jax.nn.sigmoid(a.reshape(a.shape[0], -1, self.num_tokens))  # (B', N, S)
        tokens = jnp.einsum("bns,bnc->bsc", weights, flat)
        if self.pooling == "mean":
            tokens = tokens / flat.shape[1]
        return tokens.reshape(*lead, self.num_tokens, x.shape[-1])


def token_learner(in_features: int, num_tokens: int, version: str = "v1.1", *,
                  dropout: float = 0.0, rngs: nnx.Rngs) -> nnx.Module:
    """TokenLearner by version name."""
    if version == "v1.1":
        return TokenLearnerV11(in_features, num_tokens, dropout=dropout, rngs=rngs)
    if version == "v1":
        return TokenLearnerV1(in_features, num_tokens, rngs=rngs)
    raise ValueError(f"TokenLearner version {version!r}; allowed: {', '.join(VERSIONS)}")


class TokenFuser(nnx.Module):
    """tokens (…, S, C), inputs (…, N, C) → (…, N, C); zero at init (caller adds the residual)."""

    def __init__(self, in_features: int, num_tokens: int, *, bottleneck_dim: int = 64,
                 dropout: float = 0.0, rngs: nnx.Rngs) -> None:
        check_num_tokens(num_tokens)
        self.norm_tokens = nnx.LayerNorm(in_features, rngs=rngs)
        self.mix = nnx.Linear(num_tokens, num_tokens, kernel_init=nnx.initializers.zeros,
                              rngs=rngs)
        self.norm_mixed = nnx.LayerNorm(in_features, rngs=rngs)
        self.norm_inputs = nnx.LayerNorm(in_features, rngs=rngs)
        self.mask = _Mlp(in_features, bottleneck_dim, num_tokens, 0.0, rngs)
        self.dropout = nnx.Dropout(dropout)

    def __call__(self, tokens: jax.Array, inputs: jax.Array, *, train: bool = False, rngs=None):
        z = jnp.swapaxes(self.norm_tokens(tokens), -1, -2)           # (…, C, S)
        z = self.norm_mixed(jnp.swapaxes(self.mix(z), -1, -2))       # (…, S, C)
        mask = jax.nn.sigmoid(self.mask(self.norm_inputs(inputs)))  # (…, N, S)
        fused = jnp.einsum("...ns,...sc->...nc", mask, z)
        return self.dropout(fused, deterministic=not train, rngs=rngs)
