"""Multi-task ViT classifiers (room type from panoramas + gripper place in BlockSort).

    worldsim train --config configs/backbones/vit.py:dense --workdir runs/vision/dense
    python -m worldsim.agents.vision.training runs/vision/dense --out runs/vision/dense/eval.json
    python -m worldsim.agents.vision.training runs/vision/vmoe \
        --capacity 1.0 0.5 0.25 0.125 --priority both --out runs/vision/vmoe/bpr.json
    python -m worldsim.agents.vision.training runs/vision/task_moe --task-networks \
        --out runs/vision/task_moe/eval.json

Argument: a variant, optionally followed by comma-separated modifiers, e.g.
``:tokenlearner_half,tokens16`` or ``:vmoe,small``.

Variants (backbone "mu/4": width 64, depth 4, MLP 256, 2 heads, patch 4 on 32×64 images =
128 tokens; GAP head over the 11 classes of both tasks, per-task masking):
  ``dense``                         plain ViT (the default)
  ``tokenlearner_quarter``          TokenLearner v1.1 before block 1 (1/4 of the depth)
  ``tokenlearner_half``             … before block 2 (1/2)
  ``tokenlearner_three_quarters``   … before block 3 (3/4)
  ``vmoe``                          V-MoE: E = 8, K = 2 experts in blocks 1 and 3, train
                                    capacity factor 1.05, no BPR in training, C = S at eval
  ``vmoe_k1``                       as ``vmoe`` with K = 1 (same active FLOPs as ``dense``)
  ``task_moe``                      task-routed MoE (route by task id), E = 8, K = 2, blocks 1, 3
Modifiers: ``tokens8`` / ``tokens16`` (TokenLearner token count, default 8); ``small``: a
seconds-long configuration for tests (16×32 images, width 32, depth 2, MLP 64; one house and
8 / 4 BlockSort episodes per split; 2 steps).

Data (built on first use, cached under ``data.cache_dir``; 6 min wall, 6 min CPU on 2 cores):
train = 80 train houses (2983 panoramas) + 2000 BlockSort episodes; eval = 40 val_unseen
houses (1565 panoramas) + 500 held-out BlockSort episodes. Training: batch 32 (16 per task),
Adam 1e-3 decayed ×0.3 over the run, 1000 steps, seed 0.

Measured (seed 0, 2-core x86-64 CPU shared with other jobs; held-out accuracy room type /
gripper place; forward XLA MFLOP per image; training CPU minutes, user + sys):
dense 0.737 / 0.996, 70.6 MFLOP, 204k params, 5.7 CPU min; TokenLearner 8 tokens at 1/4,
1/2, 3/4 depth 0.708 / 0.996, 0.768 / 0.998, 0.738 / 0.996 at 22.2, 38.8, 55.4 MFLOP (16
tokens: 0.689 / 0.940, 0.758 / 0.978, 0.718 / 0.988); V-MoE K = 2 0.790 / 1.000 (668k params;
at inference capacity 0.125: 0.737 vanilla vs 0.748 with BPR, 58 MFLOP); V-MoE K = 1 at
capacity 1.0 0.741 / 0.994 at 70.9 MFLOP; task-MoE 0.762 / 0.996, its extracted per-task
networks equal accuracy with 270k instead of 667k parameters. Majority-class baselines: 0.226
/ 0.274. Full tables and commands: RESULTS.md.
"""

import ml_collections

VARIANTS = ("dense", "tokenlearner_quarter", "tokenlearner_half", "tokenlearner_three_quarters",
            "vmoe", "vmoe_k1", "task_moe")
MODIFIERS = ("tokens8", "tokens16", "small")
_TL_FRACTION = {"tokenlearner_quarter": 0.25, "tokenlearner_half": 0.5,
                "tokenlearner_three_quarters": 0.75}


def _parse(argument: str) -> tuple[str, set[str]]:
    parts = [p.strip() for p in argument.split(",") if p.strip()] if argument else []
    variant = "dense"
    if parts and parts[0] in VARIANTS:
        variant = parts.pop(0)
    bad = [p for p in parts if p not in MODIFIERS]
    if bad or len(set(parts)) != len(parts):
        raise ValueError(f"unknown argument {argument!r} for configs/backbones/vit.py; expected "
                         f"[VARIANT][,MODIFIER...] with VARIANT one of {', '.join(VARIANTS)} and "
                         f"MODIFIER one of {', '.join(MODIFIERS)}")
    modifiers = set(parts)
    if {"tokens8", "tokens16"} <= modifiers:
        raise ValueError("give one of tokens8, tokens16")
    if modifiers & {"tokens8", "tokens16"} and variant not in _TL_FRACTION:
        raise ValueError(f"tokens8 / tokens16 apply to the tokenlearner_* variants, "
                         f"not {variant!r}")
    return variant, modifiers


def get_config(argument: str = "") -> ml_collections.ConfigDict:
    variant, modifiers = _parse(argument)
    config = ml_collections.ConfigDict()
    config.agent = "vision"
    config.seed = 0
    config.variant = variant
    config.data = ml_collections.ConfigDict(dict(
        cache_dir="data/vision", image_size=(32, 64), train_nav_houses=80,
        train_block_episodes=2000, eval_nav_houses=40, eval_block_episodes=500, batch_size=32,
        roll=True))
    # "mu/4": worldsim.nn.VARIANTS["mu"] (width 64, depth 4, MLP 256, 2 heads), patch 4
    config.model = ml_collections.ConfigDict(dict(
        width=64, depth=4, mlp_dim=256, num_heads=2, patch_size=4, pool="gap",
        tokenlearner_layer=-1, num_tokens=8,
        moe=ml_collections.ConfigDict(dict(
            router="none", num_experts=8, k=2, layers="every_2", capacity_factor=1.05,
            eval_capacity_factor=0.0,  # 0: C = S at evaluation, nothing dropped
            batch_priority=False, noise_std=1.0, importance_loss_weight=0.005,
            load_loss_weight=0.005))))
    config.train = ml_collections.ConfigDict(dict(
        steps=1000, learning_rate=1e-3, lr_decay_rate=0.3, lr_decay_steps=1000,
        grad_clip_norm=1.0, log_every=100, checkpoint_every=500))
    config.eval = ml_collections.ConfigDict(dict(batch_size=64))
    if "small" in modifiers:
        config.data.cache_dir = "data/vision_small"
        config.data.image_size = (16, 32)
        config.data.train_nav_houses = 1
        config.data.eval_nav_houses = 1
        config.data.train_block_episodes = 8
        config.data.eval_block_episodes = 4
        config.data.batch_size = 8
        config.model.update(dict(width=32, depth=2, mlp_dim=64, num_heads=2))
        config.train.steps = 2
        config.train.log_every = 1
        config.train.checkpoint_every = 2
        config.eval.batch_size = 16
    if variant in _TL_FRACTION:
        depth = config.model.depth
        config.model.tokenlearner_layer = min(depth - 1, int(round(depth * _TL_FRACTION[variant])))
        config.model.num_tokens = 16 if "tokens16" in modifiers else 8
    elif variant in ("vmoe", "vmoe_k1"):
        config.model.moe.router = "token"
        config.model.moe.k = 1 if variant == "vmoe_k1" else 2
    elif variant == "task_moe":
        config.model.moe.router = "task"
    return config
