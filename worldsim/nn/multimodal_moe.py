"""LIMoE per-modality entropy losses and task-level routing with per-task extraction.

**LIMoE** (Mustafa et al. 2022): one MoE encoder sees tokens of several modalities (image
patches, instruction words). For each modality m, over that modality's tokens, with p(·|x) the
router's clean softmax:

- local entropy  Ω_local(m)  = mean_x H(p(·|x))  — minimised: each token routes confidently;
- global entropy Ω_global(m) = max(0, τ − H(mean_x p(·|x))) — the marginal entropy is pushed up
  (diverse expert use) only while it is below τ = log(``global_entropy_min_experts``), a "soft
  minimum" number of experts the modality should use (τ = log E when unset, i.e. always on).
  The hinge has the same gradient as −H below τ and none above; unlike a switched −H it is
  continuous at τ.

The losses (summed over modalities, times their weights) are added to the layer's aux_loss.
The exact published form is unverified (no official code); see reference/backbones.md §6.
One-tower use: embed image patches and instruction words to the same width, concatenate them
and call ``vit.Encoder(..., moe=MoeConfig(local_entropy_weight=…, global_entropy_weight=…,
batch_priority=True, k=1))`` with ``modality_ids`` (B, L) marking each token's modality.

**Task-MoE** (Kudugunta et al. 2021): the router sees a task id, not the token: logits =
table[task] (a learned (num_tasks, E) table), so every token of an example goes to the same K
experts and no capacity is needed — each example simply runs its K experts' MLPs.
``extract_task_network(model, task_id)`` returns a copy of the model in which every task-routed
layer keeps only that task's K experts and fixed combine weights: a smaller dense model whose
evaluation outputs equal the full model's for that task.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from worldsim.nn.moe import Experts, MoeConfig, MoeMlp, route_with_noise


def _entropy(p: jax.Array) -> jax.Array:
    return -jnp.sum(p * jnp.log(jnp.clip(p, 1e-12)), axis=-1)


def entropy_losses(gates: jax.Array, modality_ids: jax.Array, num_modalities: int,
                   threshold: float) -> dict[str, jax.Array]:
    """gates (N, E) clean router probabilities, modality_ids (N,) → per-modality local and
    global entropy losses (keys ``local_entropy/<m>``, ``global_entropy/<m>``) and their sums."""
    out = {"local_entropy": jnp.zeros(()), "global_entropy": jnp.zeros(())}
    for m in range(num_modalities):
        mask = (modality_ids == m).astype(gates.dtype)
        count = jnp.maximum(jnp.sum(mask), 1.0)
        local = jnp.sum(mask * _entropy(gates)) / count
        marginal = jnp.sum(mask[:, None] * gates, axis=0) / count
        glob = jnp.maximum(0.0, threshold - _entropy(marginal))
        present = jnp.sum(mask) > 0  # a modality absent from the batch adds nothing
        out[f"local_entropy/{m}"] = local
        out[f"global_entropy/{m}"] = jnp.where(present, glob, 0.0)
        out["local_entropy"] += local
        out["global_entropy"] += out[f"global_entropy/{m}"]
    return out


class LimoeMlp(MoeMlp):
    """Token-choice MoE MLP whose aux_loss adds the LIMoE entropy losses per modality.

    Call with ``modality_ids`` (B, T) ints in [0, num_modalities); without them every token is
    treated as modality 0.
    """

    def __init__(self, dim: int, hidden: int, config: MoeConfig, *, num_modalities: int = 2,
                 rngs: nnx.Rngs) -> None:
        super().__init__(dim, hidden, config, rngs=rngs)
        self.num_modalities = num_modalities

    def extra_losses(self, clean_gates, modality_ids):
        c = self.config
        if modality_ids is None:
            modality_ids = jnp.zeros(clean_gates.shape[:1], jnp.int32)
        min_experts = c.global_entropy_min_experts or c.num_experts
        losses = entropy_losses(clean_gates, modality_ids.reshape(-1), self.num_modalities,
                                math.log(min_experts))
        weighted = (c.local_entropy_weight * losses["local_entropy"]
                    + c.global_entropy_weight * losses["global_entropy"])
        return losses, weighted


class TaskMoeMlp(nnx.Module):
    """Task-routed MoE MLP: x (B, T, D), task_ids (B,) → (y, aux). No tokens are dropped."""

    def __init__(self, dim: int, hidden: int, config: MoeConfig, *, rngs: nnx.Rngs) -> None:
        self.config = config
        self.table = nnx.Param(nnx.initializers.normal(1.0)(
            rngs.params(), (config.num_tasks, config.num_experts)))
        self.experts = Experts(config.num_experts, dim, hidden, dropout=config.expert_dropout,
                               shared_init=config.shared_expert_init, rngs=rngs)

    def __call__(self, x: jax.Array, *, task_ids: jax.Array | None = None, train: bool = False,
                 rngs: nnx.Rngs | None = None, modality_ids=None):
        c = self.config
        if task_ids is None:
            raise ValueError("this encoder routes by task: pass task_ids of shape (batch,)")
        logits = self.table[...][task_ids]  # (B, E)
        gates, _, aux = route_with_noise(logits, c, train=train, rngs=rngs, grouped=False)
        weights, chosen = jax.lax.top_k(gates, c.k)  # (B, K)
        aux["expert_load"] = jnp.mean(jax.nn.one_hot(chosen, c.num_experts), axis=(0, 1))
        aux["dropped_token_fraction"] = jnp.zeros(())
        y = _run_chosen_experts(self.experts, x, chosen, weights.astype(x.dtype), train, rngs)
        return y, aux

    def extract(self, task_id: int) -> "ExtractedTaskMlp":
        """The dense sub-network this layer runs for ``task_id`` at evaluation."""
        c = self.config
        if not 0 <= task_id < c.num_tasks:
            raise ValueError(f"task_id={task_id}; allowed: 0 … {c.num_tasks - 1}")
        weights, chosen = jax.lax.top_k(jax.nn.softmax(self.table[...][task_id]), c.k)
        return ExtractedTaskMlp(self.experts, chosen, weights)


def _run_chosen_experts(experts: Experts, x, chosen, weights, train, rngs):
    """y_b = Σ_k weights[b, k] · MLP_{chosen[b, k]}(x_b); x (B, T, D), chosen/weights (B, K)."""
    w_in, b_in = experts.w_in[...][chosen], experts.b_in[...][chosen]      # (B,K,D,H), (B,K,H)
    w_out, b_out = experts.w_out[...][chosen], experts.b_out[...][chosen]  # (B,K,H,D), (B,K,D)
    h = jnp.einsum("btd,bkdh->bkth", x, w_in) + b_in[:, :, None]
    h = experts.dropout(jax.nn.gelu(h), deterministic=not train, rngs=rngs)
    y = jnp.einsum("bkth,bkhd->bktd", h, w_out) + b_out[:, :, None]
    return jnp.einsum("bktd,bk->btd", y, weights)


class RoutingWeights(nnx.Variable):
    """Fixed combine weights of an extracted task network (not trained)."""


class ExtractedTaskMlp(nnx.Module):
    """The K experts one task uses, with that task's (clean) combine weights."""

    def __init__(self, experts: Experts, chosen: jax.Array, weights: jax.Array) -> None:
        self.experts = experts.select(chosen)
        self.weights = RoutingWeights(weights)

    def __call__(self, x: jax.Array, *, train: bool = False, rngs=None, task_ids=None,
                 modality_ids=None):
        batch = x.shape[0]
        k = self.weights.shape[0]
        chosen = jnp.broadcast_to(jnp.arange(k), (batch, k))
        weights = jnp.broadcast_to(self.weights[...], (batch, k)).astype(x.dtype)
        y = _run_chosen_experts(self.experts, x, chosen, weights, train, rngs)
        return y, {"aux_loss": jnp.zeros(())}


def build_moe_mlp(dim: int, hidden: int, config: MoeConfig, *, num_modalities: int = 2,
                  rngs: nnx.Rngs) -> nnx.Module:
    """The MoE MLP the config asks for: task-routed, LIMoE (entropy losses) or plain V-MoE."""
    if config.router == "task":
        return TaskMoeMlp(dim, hidden, config, rngs=rngs)
    if config.local_entropy_weight > 0 or config.global_entropy_weight > 0:
        return LimoeMlp(dim, hidden, config, num_modalities=num_modalities, rngs=rngs)
    return MoeMlp(dim, hidden, config, rngs=rngs)


def extract_task_network(model: nnx.Module, task_id: int) -> nnx.Module:
    """A copy of ``model`` where every TaskMoeMlp is replaced by its ``task_id`` sub-network.

    The copy holds K instead of E experts per MoE layer and no router table; at evaluation
    (``train=False``) its outputs equal the full model's for examples of ``task_id``, and it no
    longer needs ``task_ids``.
    """
    copy = nnx.clone(model)
    replaced = 0
    for _, module in list(nnx.iter_modules(copy)):
        for name, value in list(vars(module).items()):
            if isinstance(value, TaskMoeMlp):
                setattr(module, name, value.extract(task_id))
                replaced += 1
    if not replaced:
        raise ValueError("the model has no task-routed MoE layer (MoeConfig(router='task'))")
    return copy
