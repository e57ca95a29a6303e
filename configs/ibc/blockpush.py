"""BlockPush (states): implicit BC and the explicit baselines, the paper's Table 3 settings.

Pick the method after a colon (default dfo): dfo | langevin | autoregressive | mse | mdn.

    worldsim collect --env worldsim/BlockPush-v0 --episodes 2000 --num-envs 2 --out data/blockpush
    worldsim train --config configs/ibc/blockpush.py:dfo --workdir runs/blockpush_dfo
    worldsim eval --workdir runs/blockpush_dfo --episodes 100 --num-envs 2

Expected success (100 episodes, seeds 0-99, tolerance 0.02 m) and CPU time: see RESULTS.md;
the paper's defaults (batch 512, 256 counter-examples, 100k steps) are far beyond a 2-core CPU,
so the `cpu` method below is the setting measured here.
"""

from worldsim.configs.ibc.base import method_config


def get_config(method: str = "dfo"):
    if method == "cpu":
        return cpu_config()
    if method == "cpu_mse":
        return cpu_mse_config()
    return method_config(method, "worldsim/BlockPush-v0", "data/blockpush")


def cpu_config():
    """A CPU-sized DFO setting (the one `worldsim demo` uses)."""
    config = method_config("dfo", "worldsim/BlockPush-v0", "data/blockpush")
    config.model.width = 64
    config.model.depth = 4
    config.data.batch_size = 256
    config.ibc.num_negatives = 64
    config.ibc.inference_samples = 2048
    config.train.learning_rate = 2e-3
    config.train.steps = 3000
    config.train.checkpoint_every = 500
    return config


def cpu_mse_config():
    """The explicit baseline `worldsim demo` trains beside ``cpu_config``."""
    config = method_config("mse", "worldsim/BlockPush-v0", "data/blockpush")
    config.model.width = 256
    config.data.batch_size = 128
    config.train.steps = 1500
    config.train.checkpoint_every = 500
    return config
