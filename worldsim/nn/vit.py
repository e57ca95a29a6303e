"""Vision Transformer (big_vision style) with FiLM conditioning, TokenLearner and MoE MLPs.

images (B, H, W, C) → patch embedding (conv, stride = patch) → + position embedding
(sincos-2D or learned) → [class token] → pre-LayerNorm encoder blocks
x += MHA(LN(x)); x += MLP(LN(x)); [x = FiLM(x, context)] → LN → pool (GAP / MAP / class token)
→ [Dense head, zero-initialised]. ``VisionTransformer(...)(images, context) -> (out, aux)``: out
is the logits (or the pooled features when ``num_classes`` is None, or all tokens with
``pool="none"``); aux holds ``aux_loss`` (the weighted router losses of every MoE layer, 0 without
MoE), per-layer router metrics ``layer_<i>/<name>`` and ``pre_logits``.

Options: ``moe=MoeConfig(...)`` turns some MLPs into sparse MoE layers (V-MoE, LIMoE, Task-MoE);
``tokenlearner_layer=l`` learns ``num_tokens`` tokens before block l (``tokenfuser=True``: Scenic's
EncoderModFuser, the sequence keeps its length); ``num_frames=T`` takes video (B, T, H, W, C):
patches of all frames form one sequence (+ a learned time embedding) and the TokenLearner
learns its tokens per frame; ``context_dim`` adds an identity-initialised FiLM to every block
(RT-1 style language / task conditioning).

Randomness (dropout, router noise) comes from the ``rngs`` call argument — an ``nnx.Rngs`` or a
key — and is only needed with ``train=True``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from worldsim.nn.moe import MoeConfig, moe_layer_indices
from worldsim.nn.multimodal_moe import build_moe_mlp
from worldsim.nn.tokenlearner import TokenFuser, check_num_tokens, token_learner

# name: (width, depth, mlp_dim, num_heads). "mu" is worldsim's tiny variant for tests and CPU
# runs (big_vision's "mu" is 32 wide and 1 deep); "vmoe-S" is V-MoE's "S" (8 layers × 512).
VARIANTS = {
    "mu": (64, 4, 256, 2),
    "Ti": (192, 12, 768, 3),
    "S": (384, 12, 1536, 6),
    "vmoe-S": (512, 8, 2048, 8),
    "B": (768, 12, 3072, 12),
    "L": (1024, 24, 4096, 16),
    "H": (1280, 32, 5120, 16),
}
POOLS = ("gap", "map", "tok", "none")
POSEMBS = ("sincos2d", "learn")
_XAVIER = nnx.initializers.xavier_uniform()
_BIAS_INIT = nnx.initializers.normal(1e-6)


def vit_variant(name: str) -> dict[str, int]:
    """Variant by name: "S/16" → dict(width, depth, mlp_dim, num_heads, patch_size)."""
    size, _, patch = str(name).partition("/")
    if size not in VARIANTS or not patch.isdigit() or int(patch) < 1:
        raise ValueError(f"unknown ViT variant {name!r}; allowed: <size>/<patch> with size in "
                         f"{', '.join(VARIANTS)} and a positive patch size, e.g. 'S/16'")
    width, depth, mlp_dim, num_heads = VARIANTS[size]
    return dict(width=width, depth=depth, mlp_dim=mlp_dim, num_heads=num_heads,
                patch_size=int(patch))


def posemb_sincos_2d(height: int, width: int, dim: int, temperature: float = 10_000.0):
    """(height·width, dim) fixed embedding [sin x, cos x, sin y, cos y], dim/4 frequencies each."""
    if dim % 4:
        raise ValueError(f"sincos2d position embedding needs width divisible by 4, got {dim}")
    y, x = np.mgrid[:height, :width]
    omega = 1.0 / temperature ** (np.arange(dim // 4) / max(dim // 4 - 1, 1))
    y = y.reshape(-1, 1) * omega
    x = x.reshape(-1, 1) * omega
    table = np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1)
    return jnp.asarray(table, jnp.float32)


class FiLM(nnx.Module):
    """(1 + γ(ctx))·x + β(ctx), per channel; γ, β Dense layers with zero kernels and biases, so
    the layer is the identity at initialisation (RT-1). x (B, …, C), context (B, D_ctx)."""

    def __init__(self, context_dim: int, num_channels: int, *, rngs: nnx.Rngs) -> None:
        zeros = nnx.initializers.zeros
        self.scale = nnx.Linear(context_dim, num_channels, kernel_init=zeros, rngs=rngs)
        self.shift = nnx.Linear(context_dim, num_channels, kernel_init=zeros, rngs=rngs)

    def __call__(self, x: jax.Array, context: jax.Array) -> jax.Array:
        shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)
        gamma = self.scale(context).reshape(shape)
        return (1.0 + gamma) * x + self.shift(context).reshape(shape)


class MlpBlock(nnx.Module):
    """Dense(mlp_dim) → GELU → Dropout → Dense(width)."""

    def __init__(self, width: int, mlp_dim: int, dropout: float = 0.0, *, rngs: nnx.Rngs):
        self.first = nnx.Linear(width, mlp_dim, kernel_init=_XAVIER, bias_init=_BIAS_INIT,
                                rngs=rngs)
        self.second = nnx.Linear(mlp_dim, width, kernel_init=_XAVIER, bias_init=_BIAS_INIT,
                                 rngs=rngs)
        self.dropout = nnx.Dropout(dropout)

    def __call__(self, x, *, train: bool = False, rngs=None):
        h = self.dropout(jax.nn.gelu(self.first(x)), deterministic=not train, rngs=rngs)
        return self.second(h)


def _attention(num_heads: int, width: int, rngs: nnx.Rngs) -> nnx.MultiHeadAttention:
    return nnx.MultiHeadAttention(num_heads, width, kernel_init=_XAVIER, decode=False,
                                  keep_rngs=False, rngs=rngs)


class EncoderBlock(nnx.Module):
    """Pre-LN block; the MLP is dense or an MoE layer; optional FiLM on the output."""

    def __init__(self, width: int, mlp_dim: int, num_heads: int, *, dropout: float = 0.0,
                 context_dim: int | None = None, moe: MoeConfig | None = None,
                 rngs: nnx.Rngs) -> None:
        self.norm1 = nnx.LayerNorm(width, rngs=rngs)
        self.attention = _attention(num_heads, width, rngs)
        self.norm2 = nnx.LayerNorm(width, rngs=rngs)
        self.is_moe = moe is not None
        self.mlp = (build_moe_mlp(width, mlp_dim, moe, rngs=rngs) if self.is_moe
                    else MlpBlock(width, mlp_dim, dropout, rngs=rngs))
        self.dropout = nnx.Dropout(dropout)
        self.film = FiLM(context_dim, width, rngs=rngs) if context_dim else None

    def __call__(self, x, context=None, *, train=False, rngs=None, **routing):
        drop = lambda y: self.dropout(y, deterministic=not train, rngs=rngs)  # noqa: E731
        x = x + drop(self.attention(self.norm1(x), deterministic=True))
        if self.is_moe:
            y, aux = self.mlp(self.norm2(x), train=train, rngs=rngs, **routing)
        else:
            y, aux = self.mlp(self.norm2(x), train=train, rngs=rngs), {}
        x = x + drop(y)
        if self.film is not None:
            if context is None:
                raise ValueError("this model was built with context_dim: pass a context")
            x = self.film(x, context)
        return x, aux


class Encoder(nnx.Module):
    """``depth`` blocks + final LayerNorm, with optional MoE MLPs, FiLM and TokenLearner.

    x (B, T·N, D) (T = ``num_frames`` at call time, 1 for images) → ((B, L, D), aux); L = T·N, or
    T·S after a TokenLearner without fuser. ``modality_ids`` (B, L) feed LIMoE entropy losses,
    ``task_ids`` (B,) a task-routed MoE.
    """

    def __init__(self, *, width: int, depth: int, mlp_dim: int, num_heads: int,
                 dropout: float = 0.0, context_dim: int | None = None,
                 moe: MoeConfig | None = None, tokenlearner_layer: int | None = None,
                 num_tokens: int = 8, tokenlearner_version: str = "v1.1",
                 tokenfuser: bool = False, rngs: nnx.Rngs) -> None:
        moe_layers = moe_layer_indices(depth, moe.layers) if moe is not None else ()
        self.blocks = nnx.List([
            EncoderBlock(width, mlp_dim, num_heads, dropout=dropout, context_dim=context_dim,
                         moe=moe if i in moe_layers else None, rngs=rngs)
            for i in range(depth)])
        self.tokenlearner_layer, self.tokenfuser = tokenlearner_layer, tokenfuser
        self.tokenlearners, self.fusers = nnx.List([]), nnx.List([])
        if tokenlearner_layer is not None:
            if not 0 <= tokenlearner_layer < depth:
                raise ValueError(f"tokenlearner_layer={tokenlearner_layer}; it must lie in "
                                 f"[0, depth={depth})")
            check_num_tokens(num_tokens)
            count = depth - tokenlearner_layer if tokenfuser else 1
            self.tokenlearners = nnx.List([
                token_learner(width, num_tokens, tokenlearner_version, dropout=dropout, rngs=rngs)
                for _ in range(count)])
            if tokenfuser:
                self.fusers = nnx.List([TokenFuser(width, num_tokens, dropout=dropout, rngs=rngs)
                                        for _ in range(count)])
        self.norm = nnx.LayerNorm(width, rngs=rngs)

    def __call__(self, x, context=None, *, num_frames: int = 1, train: bool = False, rngs=None,
                 modality_ids=None, task_ids=None):
        start = self.tokenlearner_layer
        if start is not None and modality_ids is not None:
            raise ValueError("modality_ids cannot follow tokens through a TokenLearner")
        per_frame = lambda y: y.reshape(y.shape[0], num_frames, -1, y.shape[-1])  # noqa: E731
        merge = lambda y: y.reshape(y.shape[0], -1, y.shape[-1])  # noqa: E731
        aux = {"aux_loss": jnp.zeros((), jnp.float32)}
        for i, block in enumerate(self.blocks):
            learn = start is not None and (i == start or (self.tokenfuser and i > start))
            if learn:
                residual = x
                tl = self.tokenlearners[i - start if self.tokenfuser else 0]
                x = merge(tl(per_frame(x), video=True, train=train, rngs=rngs))
            x, block_aux = block(x, context, train=train, rngs=rngs,
                                 **({"modality_ids": modality_ids, "task_ids": task_ids}
                                    if block.is_moe else {}))
            if learn and self.tokenfuser:
                fused = self.fusers[i - start](per_frame(x), per_frame(residual), train=train,
                                               rngs=rngs)
                x = merge(fused) + residual
            for name, value in block_aux.items():
                aux[f"layer_{i}/{name}"] = value
            aux["aux_loss"] = aux["aux_loss"] + block_aux.get("aux_loss", 0.0)
        return self.norm(x), aux


class MAPHead(nnx.Module):
    """Multi-head attention pooling: a learned probe attends to the tokens, then LN + MLP."""

    def __init__(self, width: int, mlp_dim: int, num_heads: int, *, rngs: nnx.Rngs) -> None:
        self.probe = nnx.Param(_XAVIER(rngs.params(), (1, 1, width)))
        self.attention = _attention(num_heads, width, rngs)
        self.norm = nnx.LayerNorm(width, rngs=rngs)
        self.mlp = MlpBlock(width, mlp_dim, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        probe = jnp.broadcast_to(self.probe[...], (x.shape[0], 1, x.shape[-1]))
        y = self.attention(probe, x, deterministic=True)
        return (y + self.mlp(self.norm(y)))[:, 0]


class VisionTransformer(nnx.Module):
    """ViT. Build with ``VisionTransformer(**vit_variant("S/16"), image_size=224, …, rngs=…)``."""

    def __init__(self, *, width: int, depth: int, mlp_dim: int, num_heads: int,
                 patch_size: int, image_size: int | tuple[int, int], in_channels: int = 3,
                 num_classes: int | None = None, pool: str = "gap", posemb: str = "sincos2d",
                 class_token: bool = False, num_frames: int | None = None,
                 context_dim: int | None = None, dropout: float = 0.0,
                 head_bias_init: float = 0.0, moe: MoeConfig | None = None,
                 tokenlearner_layer: int | None = None, num_tokens: int = 8,
                 tokenlearner_version: str = "v1.1", tokenfuser: bool = False,
                 rngs: nnx.Rngs) -> None:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if size[0] % patch_size or size[1] % patch_size:
            raise ValueError(f"image size {size} is not divisible by the patch size {patch_size}; "
                             f"allowed: multiples of {patch_size} in both dimensions")
        if pool not in POOLS or posemb not in POSEMBS:
            raise ValueError(f"pool={pool!r}, posemb={posemb!r}; allowed pools: "
                             f"{', '.join(POOLS)}; position embeddings: {', '.join(POSEMBS)}")
        if pool == "tok" and not class_token:
            raise ValueError("pool='tok' needs class_token=True")
        if class_token and (tokenlearner_layer is not None or num_frames):
            raise ValueError("class_token is not supported with a TokenLearner or video input")
        self.image_size, self.in_channels, self.num_frames = size, in_channels, num_frames
        self.needs_rngs = dropout > 0 or (moe is not None and (moe.noise_std > 0
                                                               or moe.expert_dropout > 0))
        self.pool, self.num_classes = pool, num_classes
        grid = (size[0] // patch_size, size[1] // patch_size)
        self.patch_embed = nnx.Conv(in_channels, width, (patch_size, patch_size),
                                    strides=patch_size, padding="VALID", rngs=rngs)
        if posemb == "learn":
            init = nnx.initializers.normal(1.0 / np.sqrt(width))
            self.posemb = nnx.Param(init(rngs.params(), (grid[0] * grid[1], width)))
        else:
            self.posemb = nnx.Variable(posemb_sincos_2d(*grid, width))  # fixed, not trained
        self.time_embed = (nnx.Param(nnx.initializers.normal(0.02)(rngs.params(),
                                                                   (num_frames, 1, width)))
                           if num_frames else None)
        self.cls = nnx.Param(jnp.zeros((1, 1, width))) if class_token else None
        self.encoder = Encoder(width=width, depth=depth, mlp_dim=mlp_dim, num_heads=num_heads,
                               dropout=dropout, context_dim=context_dim, moe=moe,
                               tokenlearner_layer=tokenlearner_layer, num_tokens=num_tokens,
                               tokenlearner_version=tokenlearner_version, tokenfuser=tokenfuser,
                               rngs=rngs)
        self.map_head = MAPHead(width, mlp_dim, num_heads, rngs=rngs) if pool == "map" else None
        self.head = (nnx.Linear(width, num_classes, kernel_init=nnx.initializers.zeros,
                                bias_init=nnx.initializers.constant(head_bias_init), rngs=rngs)
                     if num_classes else None)

    def _check_images(self, images: jax.Array) -> None:
        frames = (self.num_frames,) if self.num_frames else ()
        expected = (*frames, *self.image_size, self.in_channels)
        if images.ndim != len(expected) + 1 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"images of shape {tuple(images.shape)}; this model takes "
                             f"(batch, {', '.join(map(str, expected))})")

    def __call__(self, images: jax.Array, context: jax.Array | None = None, *,
                 task_ids: jax.Array | None = None, train: bool = False, rngs=None):
        self._check_images(images)
        if train and self.needs_rngs and rngs is None:
            raise ValueError("train=True needs rngs (an nnx.Rngs or a key) for dropout and "
                             "router noise")
        if rngs is not None and not isinstance(rngs, nnx.Rngs):
            rngs = nnx.Rngs(rngs)  # a key
        batch, frames = images.shape[0], self.num_frames or 1
        x = self.patch_embed(images.reshape(-1, *images.shape[-3:]))
        x = x.reshape(batch, frames, -1, x.shape[-1]) + self.posemb[...]
        if self.time_embed is not None:
            x = x + self.time_embed[...]
        x = x.reshape(batch, -1, x.shape[-1])
        if self.cls is not None:
            x = jnp.concatenate([jnp.broadcast_to(self.cls[...], (batch, 1, x.shape[-1])), x], 1)
        x, aux = self.encoder(x, context, num_frames=frames, train=train, rngs=rngs,
                              task_ids=task_ids)
        if self.pool == "none":
            return x, aux
        if self.pool == "gap":
            x = jnp.mean(x, axis=1)
        elif self.pool == "map":
            x = self.map_head(x)
        else:  # "tok"
            x = x[:, 0]
        aux["pre_logits"] = x
        return (self.head(x) if self.head is not None else x), aux
