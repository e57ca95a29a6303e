"""IBC with derivative-free optimisation on the 2-D particle task (states).

    worldsim collect --env worldsim/Particle-v0 --episodes 2000 --num-envs 2 --out data/particle
    worldsim train --config configs/ibc/particle_dfo.py --workdir runs/particle_dfo
    worldsim eval --workdir runs/particle_dfo --episodes 100 --num-envs 2
"""

from worldsim.configs.ibc.base import base_config


def get_config():
    config = base_config("worldsim/Particle-v0", "data/particle", agent="ibc", sampler="dfo")
    config.data.batch_size = 256
    config.ibc.num_negatives = 64
    config.ibc.inference_samples = 2048
    config.train.steps = 5000
    return config
