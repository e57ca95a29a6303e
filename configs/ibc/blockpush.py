"""BlockPush (states): implicit BC and the explicit baselines, the paper's Table 3 settings.

Pick the method after a colon (default dfo): dfo | langevin | autoregressive | mse | mdn.

    worldsim collect --env worldsim/BlockPush-v0 --episodes 2000 --num-envs 2 --seed 1000 --out data/blockpush
    worldsim train --config configs/ibc/blockpush.py:dfo --workdir runs/blockpush_dfo
    worldsim eval --workdir runs/blockpush_dfo --episodes 100 --num-envs 2

Measured (1000 oracle demos from seeds 1000+, 100 held-out episodes with seeds 0-99,
tolerance 0.02 m; CPU-s = user+system seconds of training on a shared 2-core CPU; RESULTS.md):
  :cpu_dfo (= :cpu)     IBC-DFO 64×4, 3000 steps:  90.7 ± 1.2 % (seeds 0-2), ~330 CPU-s
  :cpu_langevin         IBC-Langevin, 3000 steps:  93 % (seed 0), 336 CPU-s
  :cpu_autoregressive   IBC-AR DFO, 3000 steps:    94 % (seed 0), 619 CPU-s
  :cpu_mse              MSE 256×8, 1500 steps:     57 ± 19 % (seeds 0-2), ~40 CPU-s
  :cpu_mdn              MDN 256×8, 1500 steps:     83.7 ± 9.5 % (seeds 0-2), ~45 CPU-s
  :dfo :langevin :autoregressive :mse :mdn (the paper's defaults): not run here — one
  100k-step run at batch 512 × 256 counter-examples needs ~1.6 days of this 2-core CPU.
"""

from worldsim.configs.ibc.base import method_config


def get_config(method: str = "dfo"):
    if method == "cpu":  # the name `worldsim demo` and older commands use
        method = "cpu_dfo"
    return method_config(method, "worldsim/BlockPush-v0", "data/blockpush")
