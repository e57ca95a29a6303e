"""BlockSort (states): implicit BC and the explicit baselines at the paper's defaults.

Pick the method after a colon (default dfo): dfo | langevin | autoregressive | mse | mdn.

    worldsim collect --env worldsim/BlockSort-v0 --episodes 2000 --num-envs 2 --seed 1000 --out data/blocksort
    worldsim train --config configs/ibc/blocksort.py:dfo --workdir runs/blocksort_dfo
    worldsim eval --workdir runs/blocksort_dfo --episodes 100 --num-envs 2

Expected success and CPU time: RESULTS.md lists what was measured; a cell not run there was
not run (the paper-scale defaults need far more than a 2-core CPU).
"""

from worldsim.configs.ibc.base import method_config


def get_config(method: str = "dfo"):
    return method_config(method, "worldsim/BlockSort-v0", "data/blocksort")
