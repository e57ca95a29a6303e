"""BlockPush from pixels (180×240 RGB, two frames): the late-fusion image energy model.

Pick the method after a colon (default dfo): dfo | langevin | mse | mdn (the explicit models
use the same conv encoder). Paper: batch 128, 256 negatives, 4096 DFO samples (the released
config used 2048), DenseResnetValue 1024×1.

    worldsim collect --env worldsim/BlockPush-v0 --episodes 2000 --num-envs 2 --seed 1000 \
        --obs-mode state+rgb --out data/blockpush_rgb
    worldsim train --config configs/ibc/blockpush_pixels.py:dfo --workdir runs/blockpush_pixels_dfo
    worldsim eval --workdir runs/blockpush_pixels_dfo --episodes 100 --num-envs 2

Expected success and CPU time: see RESULTS.md (a cell not run there was not run).
"""

from worldsim.configs.ibc.base import method_config


def get_config(method: str = "dfo"):
    config = method_config(method, "worldsim/BlockPush-v0", "data/blockpush_rgb", obs_mode="rgb")
    config.data.batch_size = 128
    config.train.microbatches = 1  # slicing the image batch is not measured
    config.model.width = 1024
    if method == "dfo":
        config.ibc.inference_samples = 4096
    elif method == "langevin":
        config.ibc.inference_samples = 2048
    return config
