"""Expert- and data-parallel training on 8 (forced host) devices equals the 1-device run.

The device count must be set before jax is imported, so the 8-device run happens in a
subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=8.
"""

import os
import subprocess
import sys
import textwrap

import jax
import pytest

from worldsim.nn import make_mesh

SCRIPT = textwrap.dedent("""
    import sys
    import jax, numpy as np, optax
    from flax import nnx
    from jax.sharding import PartitionSpec as P
    import worldsim.nn as wn

    assert jax.device_count() == 8, jax.devices()
    images = np.random.default_rng(0).normal(size=(16, 16, 16, 3)).astype(np.float32)
    labels = np.random.default_rng(1).integers(0, 5, 16)

    def loss_fn(model, batch, key):
        logits, aux = model(batch["images"], train=True, rngs=key)
        xent = optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"]).mean()
        return xent + aux["aux_loss"], {"aux_loss": aux["aux_loss"]}

    def train(mesh, dispatch):
        moe = wn.MoeConfig(num_experts=4, k=2, layers=(0,), dispatch=dispatch,
                           capacity_factor=1.0, shared_expert_init=False)
        model = wn.VisionTransformer(**dict(wn.vit_variant("mu/8"), depth=1), image_size=16,
                                     num_classes=5, moe=moe, dropout=0.1, rngs=nnx.Rngs(0))
        # plain SGD: Adam would amplify rounding noise on parameters with ~0 gradient
        optimizer = nnx.Optimizer(model, optax.sgd(0.5, momentum=0.9), wrt=nnx.Param)
        graphdef, state = nnx.split((model, optimizer))
        state = wn.shard_state(state, mesh)
        step = wn.make_train_step(graphdef, state, loss_fn, mesh)
        batch = wn.global_batch({"images": images, "labels": labels}, mesh)
        losses = []
        for i in range(3):
            state, metrics = step(state, batch, jax.random.key(i))
            losses.append(float(metrics["loss"]))
        w_in = state[0]["encoder"]["blocks"][0]["mlp"]["experts"]["w_in"][...]
        return losses, jax.tree.map(np.asarray, state.to_pure_dict()), w_in.sharding

    for dispatch in sys.argv[1:]:
        losses1, params1, _ = train(wn.make_mesh(1, devices=jax.devices()[:1]), dispatch)
        losses8, params8, sharding = train(wn.make_mesh(4), dispatch)
        assert sharding.spec == P("expert", None, None), sharding
        assert sharding.mesh.shape == {"data": 2, "expert": 4}, sharding.mesh
        assert losses1[-1] < losses1[0], losses1
        np.testing.assert_allclose(losses8, losses1, rtol=1e-5)
        for a, b in zip(jax.tree.leaves(params1), jax.tree.leaves(params8)):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
        print(dispatch, "ok", losses1)
""")


def test_expert_parallel_steps_equal_single_device():
    # optimisation level 0: compiles ~3× faster; both runs use the same flags
    flags = "--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0"
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", SCRIPT, "einsum", "gather"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "einsum ok" in result.stdout and "gather ok" in result.stdout


def test_make_mesh_checks_the_expert_shards():
    mesh = make_mesh(1)
    assert mesh.axis_names == ("data", "expert")
    assert mesh.shape == {"data": jax.device_count(), "expert": 1}
    with pytest.raises(ValueError, match=r"num_expert_shards=0; .*divide the"):
        make_mesh(0)
    with pytest.raises(ValueError, match=rf"num_expert_shards={jax.device_count() + 1}"):
        make_mesh(jax.device_count() + 1)
