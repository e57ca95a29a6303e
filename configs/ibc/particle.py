"""The N-D particle task (visit goal 1, then goal 2): the dimensionality study of the IBC paper.

The argument after the colon is "METHOD[,n_dim=N]", METHOD in dfo | langevin | autoregressive |
mse | mdn or their CPU-sized ``cpu_<method>`` settings (default "dfo,n_dim=2"). The dataset
folder is per dimension: ``data/particle_<N>d``.

    worldsim collect --env worldsim/Particle-v0 --episodes 1000 --num-envs 2 --seed 1000 \
        --env-kwargs '{"n_dim": 8}' --out data/particle_8d
    worldsim train --config configs/ibc/particle.py:langevin,n_dim=8 --workdir runs/particle_8d_langevin
    worldsim eval --workdir runs/particle_8d_langevin --episodes 100 --num-envs 2

Settings follow the paper's particle table where it is stated (Langevin: 128×16 trunk without
spectral norm here, 64 counter-examples... see RESULTS.md for what was run and measured).
"""

from worldsim.configs.ibc.base import method_config


def parse_argument(argument: str) -> tuple[str, int]:
    method, *options = argument.split(",")
    n_dim = 2
    for option in options:
        key, _, value = option.partition("=")
        if key != "n_dim":
            raise ValueError(f"unknown option {option!r} in {argument!r}; expected n_dim=N")
        n_dim = int(value)
    return method, n_dim


def get_config(argument: str = "dfo,n_dim=2"):
    method, n_dim = parse_argument(argument)
    config = method_config(method, "worldsim/Particle-v0", f"data/particle_{n_dim}d")
    config.env_kwargs.n_dim = n_dim
    if method.startswith("cpu_"):  # the dimension study of RESULTS.md: 2/3 of the block runs
        config.train.steps = 2000 if method != "cpu_mse" and method != "cpu_mdn" else 1000
        return config
    config.data.batch_size = 256
    config.train.steps = 5000
    config.train.checkpoint_every = 1000
    if method in ("dfo", "autoregressive"):
        config.ibc.num_negatives = 64
        config.ibc.inference_samples = 2048
    elif method == "langevin":
        config.ibc.num_negatives = 64  # paper's particle setting (the released gin used 8)
        config.ibc.langevin_steps = 50
        config.ibc.second_chain = False
    return config
