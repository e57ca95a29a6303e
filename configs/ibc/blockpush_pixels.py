"""BlockPush from pixels: the late-fusion image energy model and the explicit baselines.

Pick the method after a colon (default dfo): dfo | langevin | mse | mdn at the paper's settings
(180×240 RGB, two frames, the 4-layer conv + max-pool encoder, DenseResnetValue 1024×1, batch
128, 256 negatives, 4096 DFO samples; the released config used 2048), or cpu_dfo | cpu_langevin
| cpu_autoregressive | cpu_mse | cpu_mdn for the CPU-sized setting below.

    worldsim collect --env worldsim/BlockPush-v0 --episodes 2000 --num-envs 2 --seed 1000 \
        --obs-mode state+rgb --out data/blockpush_rgb
    worldsim train --config configs/ibc/blockpush_pixels.py:dfo --workdir runs/blockpush_pixels_dfo
    worldsim eval --workdir runs/blockpush_pixels_dfo --episodes 100 --num-envs 2

The paper's setting needs about 5 s per training step on 2 CPU cores (the full-resolution 3×3
convolutions), so the CPU setting differs: 90×120 images (the IBC code's default size), one
frame, and a spatial soft-argmax encoder with a 4×4 patch stem (``model.image_encoder``,
networks.SpatialSoftmaxEncoder; ~0.15 s per step at batch 64):

    worldsim collect --env worldsim/BlockPush-v0 --episodes 1000 --num-envs 2 --seed 1000 \
        --obs-mode state+rgb --env-kwargs '{"image_size": [90, 120]}' --out data/blockpush_rgb_90x120
    worldsim train --config configs/ibc/blockpush_pixels.py:cpu_dfo --workdir runs/blockpush_pixels_cpu_dfo
    worldsim eval --workdir runs/blockpush_pixels_cpu_dfo --episodes 100 --num-envs 2

``--config.model.image_encoder=vit`` swaps in the shared ViT backbone of ``worldsim.nn``
(``--config.model.vit_variant``, default "mu/10": 9 × 12 patches of a 90×120 image).

Expected success and CPU time: see RESULTS.md (a cell not run there was not run).
"""

from worldsim.configs.ibc.base import CPU_METHODS, method_config


def get_config(method: str = "dfo"):
    if method in CPU_METHODS:
        return cpu_config(method)
    config = method_config(method, "worldsim/BlockPush-v0", "data/blockpush_rgb", obs_mode="rgb")
    config.data.batch_size = 128
    config.train.microbatches = 1  # slicing the image batch is not measured
    config.model.width = 1024
    if method == "dfo":
        config.ibc.inference_samples = 4096
    elif method == "langevin":
        config.ibc.inference_samples = 2048
    return config


def cpu_config(method: str):
    config = method_config(method, "worldsim/BlockPush-v0", "data/blockpush_rgb_90x120",
                           obs_mode="rgb")
    config.env_kwargs.image_size = (90, 120)
    config.model.image_encoder = "spatial_softmax"
    config.model.conv_channels = (32, 32, 32)
    config.model.width = 256
    config.data.batch_size = 64
    config.train.learning_rate = 1e-3
    config.train.steps = 4000
    return config
