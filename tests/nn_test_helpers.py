"""Helpers shared by the worldsim.nn tests."""

import jax
import numpy as np
from flax import nnx

# Test-only: XLA:CPU compiles at optimisation level 0 take a fraction of the time, and these tiny
# models run in milliseconds either way.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def _fast_jit(fn):
    """``fn(module, *arrays)`` jitted over the module's state, compiled with FAST_COMPILE."""
    cache = {}

    def wrapped(module, *args):
        graphdef, state = nnx.split(module)
        if graphdef not in cache:
            cache[graphdef] = jax.jit(lambda s, *a, g=graphdef: fn(nnx.merge(g, s), *a),
                                      compiler_options=FAST_COMPILE)
        return cache[graphdef](state, *args)

    return wrapped


def _normal(seed: int, shape) -> np.ndarray:
    """Test inputs from NumPy: no XLA compile per shape."""
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)
