"""BlockPushMultimodal (states): implicit BC and the explicit baselines at the paper's defaults.

Pick the method after a colon (default dfo): dfo | langevin | autoregressive | mse | mdn.

    worldsim collect --env worldsim/BlockPushMultimodal-v0 --episodes 2000 --num-envs 2 --seed 1000 --out data/multimodal
    worldsim train --config configs/ibc/multimodal.py:dfo --workdir runs/multimodal_dfo
    worldsim eval --workdir runs/multimodal_dfo --episodes 100 --num-envs 2

Measured (600 oracle demos from seeds 1000+, 100 held-out episodes, seeds 0-99; RESULTS.md):
:cpu_dfo 2.3 ± 2.3 % (seeds 0-2, ~330 CPU-s each), :cpu_mse 0 % (seeds 0-2, ~43 CPU-s),
:cpu_mdn 0 % (seed 0), :cpu_langevin 0 % (seed 0, 338 CPU-s), :cpu_autoregressive 4 %
(seed 0, 741 CPU-s). Partial progress (a block placed): DFO 30-46 % of episodes, Langevin
29 %, AR 31 %, MSE 3-4 %. :cpu_dfo with the paper's 128x8 network, 4000 steps, 2000 demos
(--config.model.width=128 --config.model.depth=8 --config.train.steps=4000
--config.dataset=data/multimodal_2000): 5 %, a block placed in 82 %, 1933 CPU-s. The same on
2000 noise-injected demos (--noise-std 0.01, --config.data.action_labels=oracle_clean): 3 %,
a block placed in 46 %; :cpu_mse on them 0 %, a block placed in 19 %.
The paper-scale defaults: not run.
"""

from worldsim.configs.ibc.base import method_config


def get_config(method: str = "dfo"):
    return method_config(method, "worldsim/BlockPushMultimodal-v0", "data/multimodal")
