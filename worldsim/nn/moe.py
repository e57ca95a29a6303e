"""Sparse mixture-of-experts MLP (V-MoE): noisy top-K router, capacity, priority and dispatch.

One MoE layer, for tokens x of shape (B, T, D):

1. Group the tokens into (G, S, D) (``group_size`` tokens per group; one example per group by
   default). Routing, capacity and the auxiliary losses are per group.
2. Router: logits = Dense(E, no bias)(x); gates = softmax(logits). In training the dispatch uses
   softmax(logits + σ·N(0, 1)) with σ = noise_std / E, drawn from the ``'gating'`` RNG stream.
3. Each token picks its top-K experts. Every expert has C buffer slots,
   C = ceil(S·K·cf / E) rounded up to a multiple of 4. Slots are claimed K-major (every token's
   first choice before any second choice); with Batch Priority Routing the tokens are first
   ordered by their top-1 gate, so the least confident tokens are the ones dropped. A dropped
   choice contributes nothing (the block's residual carries the token).
4. Output = Σ_k gate_k · Expert_k(x) over the kept choices; the gates are the raw softmax values,
   not renormalised over the K.

Two dispatch back-ends compute step 4 from the same routing and agree to float rounding:
``"einsum"`` (one-hot (G, S, E, C) tensors; shards cleanly over an expert mesh axis) and
``"gather"`` (scatter into / gather from the (E·C) buffer by index; no term quadratic in S, the
CPU default). Auxiliary losses (importance, load; weight 0.005 each) and router metrics come
back in the aux dict, following vmoe's ``(output, metrics)`` convention.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import PartitionSpec as P

DISPATCHERS = ("gather", "einsum")
ROUTERS = ("token", "task")


@dataclasses.dataclass(frozen=True)
class MoeConfig:
    """Hyper-parameters of the MoE layers of an encoder (defaults: the V-MoE paper configs).

    ``layers``: which blocks get an MoE MLP — ``"every_2"`` (0-indexed odd blocks 1, 3, 5, …),
    ``"last_<n>"`` (the last n odd blocks, e.g. ``"last_2"`` = (5, 7) for 8 blocks) or explicit
    indices. ``eval_capacity_factor=None`` gives C = S at evaluation: nothing is dropped.
    ``shared_expert_init``: all experts start from the same weights (vmoe ``split_rngs=False``).
    ``router="task"`` routes whole examples by a task id (multimodal_moe.TaskMoeMlp); the entropy
    weights switch on the LIMoE per-modality losses (multimodal_moe.LimoeMlp).
    """

    num_experts: int = 8
    k: int = 2
    layers: str | tuple[int, ...] = "every_2"
    capacity_factor: float = 1.05
    eval_capacity_factor: float | None = None
    group_size: int | None = None
    dispatch: str = "gather"
    batch_priority: bool = False
    noise_std: float = 1.0
    importance_loss_weight: float = 0.005
    load_loss_weight: float = 0.005
    shared_expert_init: bool = True
    expert_dropout: float = 0.0
    router: str = "token"
    num_tasks: int = 0
    local_entropy_weight: float = 0.0
    global_entropy_weight: float = 0.0
    global_entropy_min_experts: float | None = None

    def __post_init__(self):
        if self.num_experts < 1:
            raise ValueError(f"num_experts={self.num_experts}; it must be ≥ 1")
        if not 1 <= self.k <= self.num_experts:
            raise ValueError(f"k={self.k}; it must lie in [1, num_experts={self.num_experts}]")
        for name in ("capacity_factor", "eval_capacity_factor"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name}={value}; it must be > 0")
        if self.dispatch not in DISPATCHERS:
            raise ValueError(f"dispatch={self.dispatch!r}; allowed: {', '.join(DISPATCHERS)}")
        if self.router not in ROUTERS:
            raise ValueError(f"router={self.router!r}; allowed: {', '.join(ROUTERS)}")
        if self.router == "task" and self.num_tasks < 1:
            raise ValueError(f"router='task' needs num_tasks ≥ 1, got {self.num_tasks}")
        if self.group_size is not None and self.group_size < 1:
            raise ValueError(f"group_size={self.group_size}; it must be ≥ 1 or None")


def compute_capacity(num_tokens: int, num_experts: int, k: int, capacity_factor: float) -> int:
    """Slots per expert: ceil(S·K·cf / E), rounded up to a multiple of 4 (vmoe)."""
    if not capacity_factor > 0:
        raise ValueError(f"capacity_factor={capacity_factor}; it must be > 0")
    capacity = math.ceil(num_tokens * k * capacity_factor / num_experts)
    return 4 * math.ceil(capacity / 4)


def moe_layer_indices(depth: int, layers: str | tuple[int, ...]) -> tuple[int, ...]:
    """The 0-indexed blocks that get an MoE MLP (see ``MoeConfig.layers``)."""
    odd = tuple(range(1, depth, 2))
    if layers == "every_2":
        return odd
    if isinstance(layers, str) and layers.startswith("last_") and layers[5:].isdigit():
        n = int(layers[5:])
        if not 1 <= n <= len(odd):
            raise ValueError(f"layers={layers!r}: n must lie in [1, {len(odd)}] for depth {depth}")
        return odd[-n:]
    if isinstance(layers, (tuple, list)) and all(isinstance(i, int) for i in layers):
        bad = [i for i in layers if not 0 <= i < depth]
        if bad:
            raise ValueError(f"MoE layer indices {bad} lie outside [0, {depth})")
        return tuple(sorted(set(layers)))
    raise ValueError(f"layers={layers!r}; allowed: 'every_2', 'last_<n>' or a tuple of indices")


# ---------------------------------------------------------------------------------------------
# Routing: top-K choices → (expert, slot, weight) per (token, k)
# ---------------------------------------------------------------------------------------------

class Routing(NamedTuple):
    """Per (group, token, k): chosen expert, buffer slot, combine weight, slot < capacity."""

    experts: jax.Array  # (G, S, K) int32
    slots: jax.Array    # (G, S, K) int32
    weights: jax.Array  # (G, S, K) float
    valid: jax.Array    # (G, S, K) bool


def _assign_slots(gates: jax.Array, k: int, batch_priority: bool):
    """One group: gates (S, E) → experts, slots, weights, each (S, K)."""
    num_tokens, num_experts = gates.shape
    weights, experts = jax.lax.top_k(gates, k)
    if batch_priority:  # most confident tokens claim slots first
        order = jnp.argsort(-weights[:, 0], stable=True)
    else:
        order = jnp.arange(num_tokens)
    claims = experts[order].T.reshape(-1)              # K-major: all first choices first
    one_hot = jax.nn.one_hot(claims, num_experts, dtype=jnp.int32)
    position = jnp.cumsum(one_hot, axis=0) - 1         # earlier claims on the same expert
    slots_sorted = jnp.sum(position * one_hot, axis=1).reshape(k, num_tokens).T
    slots = jnp.zeros_like(slots_sorted).at[order].set(slots_sorted)
    return experts, slots, weights


def route_top_k(gates: jax.Array, k: int, capacity: int, batch_priority: bool) -> Routing:
    """gates (G, S, E) → Routing with K-major slot priority (and BPR if asked)."""
    experts, slots, weights = jax.vmap(
        lambda g: _assign_slots(g, k, batch_priority))(gates)
    return Routing(experts, slots, weights, slots < capacity)


def _cv_squared(x: jax.Array) -> jax.Array:
    """(std / mean)² with the population std."""
    return jnp.var(x) / (jnp.mean(x) ** 2 + 1e-10)


def importance_loss(gates: jax.Array) -> jax.Array:
    """One group's clean gates (S, E) → CV² of the per-expert gate sums."""
    return _cv_squared(jnp.sum(gates, axis=0))


def load_loss(logits: jax.Array, noisy_logits: jax.Array, sigma: float, k: int) -> jax.Array:
    """One group → CV² of each expert's mean probability of staying in a token's top K under
    fresh noise: P(clean_logit + σ·n ≥ K-th largest noisy logit)."""
    kth = jax.lax.top_k(noisy_logits, k)[1][:, -1]
    # one-hot · sum rather than a gather: no all-gather in the backward pass (vmoe)
    threshold = jnp.sum(jax.nn.one_hot(kth, logits.shape[-1]) * noisy_logits, axis=-1)
    p = 1.0 - jax.scipy.stats.norm.cdf((threshold[:, None] - logits) / sigma)
    return _cv_squared(jnp.mean(p, axis=0))


def route_with_noise(logits: jax.Array, config: "MoeConfig", *, train: bool,
                     rngs: nnx.Rngs | None, grouped: bool) -> tuple[jax.Array, jax.Array, dict]:
    """Router logits → (gates used for dispatch, clean gates, aux losses).

    Gates are softmax(logits), with Gaussian noise of std ``noise_std / E`` added to the logits
    in training (needs ``rngs.gating``). Aux: importance and load losses and their weighted sum
    ``aux_loss``. grouped: logits are (G, S, E) and the losses are averaged over the G groups;
    otherwise logits are (B, E), one group.
    """
    c = config
    per_group = (lambda fn: lambda *a: jnp.mean(jax.vmap(fn)(*a))) if grouped else (lambda fn: fn)
    clean = jax.nn.softmax(logits)
    aux = {"importance_loss": per_group(importance_loss)(clean)}
    sigma = c.noise_std / c.num_experts
    if train and sigma > 0:
        if rngs is None:
            raise ValueError("train=True with router noise needs rngs (a 'gating' stream)")
        noisy = logits + sigma * jax.random.normal(rngs.gating(), logits.shape)
        gates = jax.nn.softmax(noisy)
        aux["load_loss"] = per_group(lambda a, b: load_loss(a, b, sigma, c.k))(logits, noisy)
    else:
        gates = clean
        aux["load_loss"] = jnp.zeros((), jnp.float32)
    aux["aux_loss"] = (c.importance_loss_weight * aux["importance_loss"]
                       + c.load_loss_weight * aux["load_loss"])
    return gates, clean, aux


class NoisyTopKRouter(nnx.Module):
    """Gate = Dense(E, no bias). Returns the dispatch gates (noisy in training) and losses."""

    def __init__(self, dim: int, config: MoeConfig, *, rngs: nnx.Rngs) -> None:
        self.config = config
        self.gate = nnx.Linear(dim, config.num_experts, use_bias=False, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool = False, rngs: nnx.Rngs | None = None):
        """x (G, S, D) → (gates (G, S, E) used for dispatch, clean gates, aux losses)."""
        logits = self.gate(x).astype(jnp.float32)
        gates, clean, aux = route_with_noise(logits, self.config, train=train, rngs=rngs, grouped=True)
        return gates, clean, aux


# ---------------------------------------------------------------------------------------------
# Experts and the two dispatch back-ends
# ---------------------------------------------------------------------------------------------

_KERNEL_INIT = jax.nn.initializers.xavier_uniform(in_axis=-2, out_axis=-1, batch_axis=(0,))
_BIAS_INIT = jax.nn.initializers.normal(1e-6)


def _expert_param(value: jax.Array) -> nnx.Param:
    """A parameter whose leading axis is the expert axis, sharded over the 'expert' mesh axis."""
    names = ("expert",) + (None,) * (value.ndim - 1)
    return nnx.Param(value, out_sharding=names, eager_sharding=False)


class Experts(nnx.Module):
    """E MLPs (Dense → GELU → Dense) with stacked weights; x (E, N, D) → (E, N, D)."""

    def __init__(self, num_experts: int, dim: int, hidden: int, *, shared_init: bool = True,
                 dropout: float = 0.0, rngs: nnx.Rngs) -> None:
        def init(fn, shape):
            if shared_init:
                value = fn(rngs.params(), (1, *shape))
                return _expert_param(jnp.repeat(value, num_experts, axis=0))
            return _expert_param(fn(rngs.params(), (num_experts, *shape)))

        self.w_in = init(_KERNEL_INIT, (dim, hidden))
        self.b_in = init(_BIAS_INIT, (hidden,))
        self.w_out = init(_KERNEL_INIT, (hidden, dim))
        self.b_out = init(_BIAS_INIT, (dim,))
        self.dropout = nnx.Dropout(dropout)

    @property
    def num_experts(self) -> int:
        return self.w_in.shape[0]

    def select(self, indices: jax.Array) -> "Experts":
        """A copy holding only the experts at ``indices``, in that order."""
        subset = nnx.clone(self)
        for name in ("w_in", "b_in", "w_out", "b_out"):
            getattr(subset, name).set_value(getattr(self, name)[...][indices])
        return subset

    def __call__(self, x: jax.Array, *, train: bool = False, rngs=None) -> jax.Array:
        h = jnp.einsum("end,edh->enh", x, self.w_in[...]) + self.b_in[...][:, None]
        h = self.dropout(jax.nn.gelu(h), deterministic=not train, rngs=rngs)
        return jnp.einsum("enh,ehd->end", h, self.w_out[...]) + self.b_out[...][:, None]


def _constrain(x: jax.Array, spec: P) -> jax.Array:
    """Sharding constraint, applied only under a mesh with 'data' and 'expert' axes (see
    sharding.py) and only where the sharded dimensions divide evenly."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or not {"data", "expert"} <= set(mesh.axis_names):
        return x
    for size, axes in zip(x.shape, spec):
        axes = () if axes is None else (axes,) if isinstance(axes, str) else axes
        if size % math.prod(mesh.shape[a] for a in axes):
            return x
    return jax.lax.with_sharding_constraint(x, spec)


def dispatch_einsum(x: jax.Array, routing: Routing, capacity: int, num_experts: int,
                    experts_fn) -> jax.Array:
    """One-hot dispatch/combine tensors (G, S, E, C) and two einsums (vmoe EinsumDispatcher).
    ``experts_fn`` maps the expert buffers (E, G·C, D) to (E, G·C, D)."""
    groups, _, dim = x.shape
    expert_hot = jax.nn.one_hot(routing.experts, num_experts, dtype=x.dtype)
    slot_hot = jax.nn.one_hot(routing.slots, capacity, dtype=x.dtype)  # zeros when dropped
    dispatch = jnp.einsum("gske,gskc->gsec", expert_hot, slot_hot)
    combine = jnp.einsum("gske,gskc,gsk->gsec", expert_hot, slot_hot,
                         routing.weights.astype(x.dtype))
    buffers = jnp.einsum("gsec,gsd->egcd", dispatch, x)
    # groups arrive split over all devices; re-split experts over "expert" (GSPMD all-to-all)
    by_group, by_expert = P(None, ("data", "expert")), P("expert", "data")
    buffers = _constrain(_constrain(buffers, by_group), by_expert)
    out = experts_fn(buffers.reshape(num_experts, groups * capacity, dim))
    out = out.reshape(num_experts, groups, capacity, dim)
    out = _constrain(_constrain(out, by_expert), by_group)
    return jnp.einsum("gsec,egcd->gsd", combine, out)


def dispatch_gather(x: jax.Array, routing: Routing, capacity: int, num_experts: int,
                    experts_fn) -> jax.Array:
    """Scatter each kept (token, k) into its row of the (E, G·C) expert buffer, run the
    experts, gather the rows back and sum them with the combine weights."""
    groups, _, dim = x.shape
    size = num_experts * groups * capacity
    group = jnp.arange(groups)[:, None, None]
    row = routing.experts * (groups * capacity) + group * capacity + routing.slots
    row = jnp.where(routing.valid, row, size).reshape(-1)  # row == size: dropped
    copies = jnp.broadcast_to(x[:, :, None], (*routing.experts.shape, dim)).reshape(-1, dim)
    buffers = jnp.zeros((size, dim), x.dtype).at[row].set(copies, mode="drop")
    out = experts_fn(buffers.reshape(num_experts, groups * capacity, dim)).reshape(size, dim)
    picked = out.at[row].get(mode="fill", fill_value=0).reshape(*routing.experts.shape, dim)
    weights = jnp.where(routing.valid, routing.weights, 0).astype(x.dtype)
    return jnp.einsum("gskd,gsk->gsd", picked, weights)


_DISPATCH = {"einsum": dispatch_einsum, "gather": dispatch_gather}


class MoeMlp(nnx.Module):
    """Token-choice MoE MLP block. x (B, T, D) → (y (B, T, D), aux).

    aux: ``aux_loss`` (weighted sum of the losses below, to add to the training loss),
    ``importance_loss``, ``load_loss`` (0 without noise), ``dropped_token_fraction`` (tokens none
    of whose K choices got a slot), ``dropped_choice_fraction`` (of the K·tokens choices) and
    ``expert_load`` (E,): the fraction of all choices that picked each expert.
    """

    def __init__(self, dim: int, hidden: int, config: MoeConfig, *, rngs: nnx.Rngs) -> None:
        self.config = config
        self.router = NoisyTopKRouter(dim, config, rngs=rngs)
        self.experts = Experts(config.num_experts, dim, hidden, dropout=config.expert_dropout,
                               shared_init=config.shared_expert_init, rngs=rngs)

    def capacity(self, group_size: int, train: bool) -> int:
        c = self.config
        factor = c.capacity_factor if train else c.eval_capacity_factor
        if factor is None:
            return group_size  # every token fits in every expert: nothing is dropped
        return compute_capacity(group_size, c.num_experts, c.k, factor)

    def extra_losses(self, clean_gates: jax.Array, modality_ids):
        """Hook for more router losses (LIMoE entropy losses): clean gates (N, E) →
        (metrics, weighted loss to add to aux_loss). None here."""
        if modality_ids is not None:
            raise ValueError("modality_ids given but this MoE layer has no entropy losses; "
                             "set MoeConfig.local_entropy_weight / global_entropy_weight")
        return {}, 0.0

    def __call__(self, x: jax.Array, *, train: bool = False, rngs: nnx.Rngs | None = None,
                 modality_ids: jax.Array | None = None, task_ids=None):
        c = self.config
        batch, length, dim = x.shape
        group_size = c.group_size or length
        if (batch * length) % group_size:
            raise ValueError(f"group_size={group_size} does not divide the {batch}×{length} "
                             "tokens of the batch")
        xg = x.reshape(-1, group_size, dim)
        capacity = self.capacity(group_size, train)
        gates, clean, aux = self.router(xg, train=train, rngs=rngs)
        routing = route_top_k(gates, c.k, capacity, c.batch_priority)
        y = _DISPATCH[c.dispatch](xg, routing, capacity, c.num_experts,
                                  lambda b: self.experts(b, train=train, rngs=rngs))
        metrics, extra_loss = self.extra_losses(clean.reshape(-1, c.num_experts), modality_ids)
        aux.update(metrics)
        aux["aux_loss"] = aux["aux_loss"] + extra_loss
        aux["dropped_token_fraction"] = jnp.mean(~jnp.any(routing.valid, axis=-1))
        aux["dropped_choice_fraction"] = 1.0 - jnp.mean(routing.valid)
        aux["expert_load"] = jnp.mean(jax.nn.one_hot(routing.experts, c.num_experts),
                                      axis=(0, 1, 2))
        return y.reshape(batch, length, dim).astype(x.dtype), aux
