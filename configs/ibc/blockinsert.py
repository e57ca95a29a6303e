"""BlockInsert (states): implicit BC and the explicit baselines at the paper's defaults.

Pick the method after a colon (default dfo): dfo | langevin | autoregressive | mse | mdn.

    worldsim collect --env worldsim/BlockInsert-v0 --episodes 2000 --num-envs 2 --seed 1000 --out data/blockinsert
    worldsim train --config configs/ibc/blockinsert.py:dfo --workdir runs/blockinsert_dfo
    worldsim eval --workdir runs/blockinsert_dfo --episodes 100 --num-envs 2

Measured (500 oracle demos from seeds 1000+, 100 held-out episodes, seeds 0-99, seed 0;
RESULTS.md): :cpu_dfo 11 % (339 CPU-s), :cpu_langevin 21 % (360 CPU-s), :cpu_mse 0 % (41 CPU-s),
:cpu_mdn 3 % (51 CPU-s), :cpu_autoregressive 19 % (617 CPU-s).
The paper-scale defaults: not run (far beyond a 2-core CPU).
"""

from worldsim.configs.ibc.base import method_config


def get_config(method: str = "dfo"):
    return method_config(method, "worldsim/BlockInsert-v0", "data/blockinsert")
