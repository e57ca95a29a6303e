"""BlockPushMultiTarget (states): implicit BC and the explicit baselines at the paper's defaults.

Pick the method after a colon (default dfo): dfo | langevin | autoregressive | mse | mdn.

    worldsim collect --env worldsim/BlockPushMultiTarget-v0 --episodes 2000 --num-envs 2 --seed 1000 --out data/multitarget
    worldsim train --config configs/ibc/multitarget.py:dfo --workdir runs/multitarget_dfo
    worldsim eval --workdir runs/multitarget_dfo --episodes 100 --num-envs 2

Measured (500 oracle demos from seeds 1000+, 100 held-out episodes, seeds 0-99, seed 0;
RESULTS.md): :cpu_dfo 79 % (331 CPU-s), :cpu_langevin 87 % (378 CPU-s), :cpu_mse 36 % (43 CPU-s),
:cpu_mdn 71 % (46 CPU-s), :cpu_autoregressive 65 % (615 CPU-s).
The paper-scale defaults: not run (far beyond a 2-core CPU).
"""

from worldsim.configs.ibc.base import method_config


def get_config(method: str = "dfo"):
    return method_config(method, "worldsim/BlockPushMultiTarget-v0", "data/multitarget")
