"""The instruction–path compatibility scorer used by the look-ahead planners.

    worldsim train --config configs/nav/scorer.py --workdir runs/nav_scorer
    worldsim nav-eval --planner ground_truth --scorer runs/nav_scorer --split val_unseen \
        --episodes 200 --out runs/nav_scorer/nav_eval_ground_truth.json

The corpus (panoramas of every viewpoint of the first ``data.num_houses`` train houses and
sampled instruction groups) is built on first use and cached at ``data.cache``.
Argument ``:small`` is a quick configuration for tests.
Measured results (CPU time, success rates) are in RESULTS.md.
"""

import ml_collections


def get_config(argument: str = "") -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.agent = "nav_scorer"
    config.seed = 0
    config.data = ml_collections.ConfigDict(dict(
        cache="data/nav_scorer_corpus.npz", num_houses=200, episodes_per_house=20, negatives=7,
        groups_per_batch=32, max_path_nodes=10, blind_probability=0.5))
    config.model = ml_collections.ConfigDict(dict(width=128, heads=4, layers=2))
    config.train = ml_collections.ConfigDict(dict(
        steps=3000, learning_rate=1e-3, lr_decay_rate=0.5, lr_decay_steps=1500,
        grad_clip_norm=1.0, log_every=100, checkpoint_every=500))
    if argument == "small":
        config.data.cache = "data/nav_scorer_corpus_small.npz"
        config.data.num_houses = 4
        config.data.episodes_per_house = 5
        config.data.groups_per_batch = 8
        config.model = ml_collections.ConfigDict(dict(width=32, heads=2, layers=1))
        config.train.steps = 20
        config.train.log_every = 10
        config.train.checkpoint_every = 10
    elif argument:
        raise ValueError(f"unknown argument {argument!r} for configs/nav/scorer.py; expected '' or 'small'.")
    return config
