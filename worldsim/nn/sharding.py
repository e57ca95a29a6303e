"""Expert- and data-parallel training with ``jax.jit`` and ``NamedSharding`` (no pmap).

The device mesh has axes ("data", "expert"). Expert weights (the stacked (E, …) parameters of
``moe.Experts``, tagged ``sharding_names=("expert", …)``) and their optimizer moments are split
over "expert"; every other parameter is replicated; the batch is split over both axes, so every
device holds batch / num_devices examples. Inside the einsum dispatch the (groups, experts)
buffer is re-constrained from group-sharded to expert-sharded and back, and GSPMD inserts the
all-to-all (vmoe's scheme); the gather dispatch also runs under the mesh but leaves the
exchange to GSPMD.

    mesh = make_mesh(num_expert_shards=4)            # 8 devices → 2 (data) × 4 (expert)
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    graphdef, state = nnx.split((model, optimizer))
    state = shard_state(state, mesh)
    step = make_train_step(graphdef, state, loss_fn, mesh)
    state, metrics = step(state, global_batch(local_batch, mesh), key)

``loss_fn(model, batch, key) -> (loss, metrics)`` as in ``worldsim.train.loop``.

Multi-host: call ``jax.distributed.initialize()`` before anything touches the devices (before
``make_mesh``); ``make_mesh`` then spans the global ``jax.devices()``, and ``global_batch``
assembles each process's local slice of the batch into one global array. Nothing here needs
``jax.distributed`` on a single host. On CPU, test with
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` set before jax is imported.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXES = ("data", "expert")


def make_mesh(num_expert_shards: int, devices=None) -> Mesh:
    """A (num_devices / num_expert_shards) × num_expert_shards mesh with axes ("data", "expert").

    ``devices`` defaults to all (global) devices. The axes are Auto: shardings propagate by
    GSPMD from the inputs and the constraints in the MoE layer. ``num_experts`` must be a
    multiple of ``num_expert_shards``, and the batch of the number of devices.
    """
    devices = list(jax.devices() if devices is None else devices)
    if num_expert_shards < 1 or len(devices) % num_expert_shards:
        raise ValueError(f"num_expert_shards={num_expert_shards}; it must be ≥ 1 and divide the "
                         f"{len(devices)} devices")
    shape = (len(devices) // num_expert_shards, num_expert_shards)
    return jax.make_mesh(shape, AXES, axis_types=(AxisType.Auto,) * 2, devices=devices)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over every device of the mesh."""
    return NamedSharding(mesh, P(AXES))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def state_shardings(state: Any, mesh: Mesh) -> Any:
    """Shardings for an ``nnx.state`` tree: expert-tagged variables (and their optimizer
    moments) over "expert", everything else replicated."""
    return nnx.get_named_sharding(state, mesh)


def shard_state(state: Any, mesh: Mesh) -> Any:
    """Place ``state`` on the mesh with ``state_shardings``."""
    return jax.device_put(state, state_shardings(state, mesh))


def global_batch(local_batch: Any, mesh: Mesh) -> Any:
    """This process's slice of the batch → global arrays split over the mesh (any host count)."""
    sharding = batch_sharding(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x),
                        local_batch)


def make_train_step(graphdef, state, loss_fn: Callable, mesh: Mesh, *,
                    donate: bool = True) -> Callable:
    """``step(state, batch, key) -> (state, metrics)`` jitted with explicit shardings.

    ``state`` is ``nnx.state((model, optimizer))`` for the ``graphdef`` of the same pair (only
    its structure is used here). Metrics come back replicated.
    """
    state_sh = state_shardings(state, mesh)

    def step(state, batch, key):
        model, optimizer = nnx.merge(graphdef, state)
        grad_fn = nnx.value_and_grad(lambda m: loss_fn(m, batch, key), has_aux=True)
        (loss, metrics), grads = grad_fn(model)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), {**metrics, "loss": loss}

    jitted = jax.jit(step, in_shardings=(state_sh, batch_sharding(mesh), replicated(mesh)),
                     out_shardings=(state_sh, replicated(mesh)),
                     donate_argnums=(0,) if donate else ())

    def run(state, batch, key):
        with jax.set_mesh(mesh):  # lets the MoE layer place its sharding constraints
            return jitted(state, batch, key)

    return run
