"""BlockSort (states): implicit BC and the explicit baselines at the paper's defaults.

Pick the method after a colon (default dfo): dfo | langevin | autoregressive | mse | mdn.

    worldsim collect --env worldsim/BlockSort-v0 --episodes 2000 --num-envs 2 --seed 1000 --out data/blocksort
    worldsim train --config configs/ibc/blocksort.py:dfo --workdir runs/blocksort_dfo
    worldsim eval --workdir runs/blocksort_dfo --episodes 100 --num-envs 2

Measured (300 oracle demos from seeds 1000+, 100 held-out episodes, seeds 0-99, seed 0;
RESULTS.md): :cpu_dfo 0 % (349 CPU-s; 12 % of episodes sort one cube), :cpu_mse 0 % (37 CPU-s;
5 % sort one cube), :cpu_mdn 0 % (44 CPU-s; 12 % sort one cube). Other methods and the paper-scale defaults: not run.
On 1200 noise-injected demonstrations (``--noise-std 0.01``, trained with
``--config.data.action_labels=oracle_clean``): :cpu_dfo at 128×8 0 % (1999 CPU-s; 11 % sort at
least one cube), :cpu_mse 0 % (50 CPU-s; 5 %) — RESULTS.md, "Noise-injected demonstrations".

Demonstrations without the oracle's home trips learn better (RESULTS.md, "A demonstrator without
the home trips"):

    worldsim collect --env worldsim/BlockSort-v0 --episodes 1000 --num-envs 2 --seed 1000 \
        --oracle-options '{"via_home": false}' --out data/blocksort_direct_1000
    worldsim train --config configs/ibc/blocksort.py:cpu_dfo --workdir runs/sort_direct/w128d8_4k \
        --config.model.width=128 --config.model.depth=8 --config.train.steps=4000 \
        --config.dataset=data/blocksort_direct_1000

Measured: 4 % / 8 % success (seeds 0 / 1; at least one cube sorted in 50 / 54 % of episodes;
1569 / 2033 CPU-s); :cpu_mse on the same data 0 % (4 %; 51 CPU-s), :cpu_mdn 0 % (5 %; 66 CPU-s).
"""

from worldsim.configs.ibc.base import method_config


def get_config(method: str = "dfo"):
    return method_config(method, "worldsim/BlockSort-v0", "data/blocksort")
