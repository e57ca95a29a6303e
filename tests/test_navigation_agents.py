"""Navigation agents: text, paths, the instruction–path scorer, the planner and nav-eval."""

import json

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
from flax import nnx

from worldsim.agents.nav.evaluation import evaluate_navigation, make_navigator
from worldsim.agents.nav.features import panorama_features
from worldsim.agents.nav.paths import (extensions, full_path_negatives, path_geometry,
                                       prefix_negatives)
from worldsim.agents.nav.planner import BaselineSource, LookAheadPlanner, make_source
from worldsim.agents.nav.scorer import InstructionPathScorer, contrastive_loss
from worldsim.agents.nav.text import Vocabulary, tokenize
from worldsim.envs.navigation.env import STOP, IndoorNavEnv
from worldsim.envs.navigation.scene import load_scene


def test_tokenize_and_vocabulary():
    assert tokenize("Leave the bedroom, turn LEFT.") == ["leave", "the", "bedroom", ",", "turn", "left", "."]
    vocabulary = Vocabulary.from_texts(["walk into the kitchen."])
    ids = vocabulary.encode("walk into the garage.", 8)
    assert ids.shape == (8,) and ids[3] == 1 and ids[5:].tolist() == [0, 0, 0]


def test_path_geometry_turn_sign_and_lengths():
    positions = np.array([[0, 0, 1.5], [2, 0, 1.5], [2, 2, 1.5], [0, 2, 1.5]], np.float32)
    features = path_geometry(positions)
    assert features[2, 0] == pytest.approx(1.0)  # +x then +y: a left turn
    assert features[1, :2].tolist() == [0.0, 1.0]
    assert features[1:, 2] == pytest.approx([1.0, 1.0, 1.0])


def test_extensions_and_negatives():
    scene = load_scene(100_000)
    start = 0
    grown = extensions(scene.graph, [start], 2)
    assert grown and all(len(set(p)) == len(p) and p[0] == start for p in grown)
    assert all(scene.graph.has_edge(a, b) for p in grown for a, b in zip(p, p[1:]))
    goal = max(scene.distances[start], key=scene.distances[start].get)
    path = nx.shortest_path(scene.graph, start, goal, weight="weight")
    rng = np.random.default_rng(0)
    for negative in full_path_negatives(scene, path, rng, 7):
        assert negative != path and negative[0] == start
    prefix = path[:3]
    for negative in prefix_negatives(scene, prefix, rng, 7):
        assert negative != prefix and negative[0] == start


def _tiny_batch(rng, groups=3, candidates=4, nodes=5, panoramas=12):
    return {
        "tokens": jnp.asarray(rng.integers(2, 20, (groups, 16)), jnp.int32),
        "panorama_features": jnp.asarray(panorama_features(rng.integers(0, 42, (panoramas, 32, 64)),
                                                           rng.uniform(0.5, 6, (panoramas, 32, 64)))),
        "path_nodes": jnp.asarray(rng.integers(0, panoramas, (groups, candidates, nodes))),
        "path_geometry": jnp.asarray(rng.normal(size=(groups, candidates, nodes, 3)), jnp.float32),
        "path_mask": jnp.asarray(np.arange(nodes) < 3)[None, None].repeat(groups, 0).repeat(candidates, 1)
                     .at[0, -1].set(False),  # one padded candidate
        "blind": jnp.array([False, True, False]),
    }


def test_scorer_shapes_blind_mode_and_finite_gradients():
    model = InstructionPathScorer(20, nnx.Rngs(0), width=16, heads=1, layers=1)
    batch = _tiny_batch(np.random.default_rng(0))
    forward = nnx.jit(lambda m, b: m(b))
    scores, aux = forward(model, batch)
    assert scores.shape == (3, 4) and aux["cross_scores"].shape == (3, 3)
    changed = dict(batch, panorama_features=batch["panorama_features"][::-1])
    new_scores, _ = forward(model, changed)
    np.testing.assert_allclose(new_scores[1], scores[1], rtol=1e-5)  # blind group ignores pixels
    assert not np.allclose(new_scores[0], scores[0])

    grads = nnx.jit(lambda m: nnx.grad(lambda m: contrastive_loss(m, batch, None)[0])(m))(model)
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(nnx.state(grads)))  # padded
    # paths once gave NaN gradients


@pytest.mark.slow
def test_scorer_learns_a_fixed_batch():
    model = InstructionPathScorer(20, nnx.Rngs(1), width=16, heads=1, layers=1)
    batch = _tiny_batch(np.random.default_rng(1))
    import optax
    optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: contrastive_loss(m, batch, None)[0])(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer)) for _ in range(25)]
    assert losses[-1] < 0.5 * losses[0]


class _ReferenceFollowingPlanner(LookAheadPlanner):
    """Scores candidates by agreement with the reference path (no network)."""

    def __init__(self, horizon=2):
        self.horizon, self.source = horizon, BaselineSource()

    def reset(self, env):
        pass

    def scores(self, env, paths):
        reference = list(env.episode.reference_path)
        return np.array([sum(a == b for a, b in zip(p, reference)) - 0.5 * abs(len(p) - len(reference))
                         for p in paths])


def test_look_ahead_planner_moves_along_the_best_candidate_and_stops():
    env = IndoorNavEnv(split="val_unseen", panorama_size=(16, 32))
    planner = _ReferenceFollowingPlanner()
    for seed in range(3):
        env.reset(seed=seed)
        planner.reset(env)
        done = False
        while not done:
            action = planner.act(env)
            _, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        assert action == STOP and info["metrics"]["sr"] == 1.0
        assert env.path == list(env.episode.reference_path)


def test_unknown_planner_source_and_missing_scorer_errors():
    with pytest.raises(ValueError, match="Known planners: oracle, random, ground_truth, baseline, world_model"):
        make_navigator("greedy")
    with pytest.raises(ValueError, match="Known sources"):
        make_source("lidar")
    with pytest.raises(ValueError, match="--world-model"):
        make_navigator("world_model", scorer_workdir="runs/anything")
    with pytest.raises(ValueError, match="--scorer"):
        make_navigator("ground_truth")


def test_nav_eval_oracle_and_random_write_results(tmp_path):
    out = tmp_path / "results.json"
    oracle = evaluate_navigation("oracle", episodes=3, out=out, progress=False)
    assert oracle["summary"]["sr"] == 1.0 and oracle["summary"]["spl"] == pytest.approx(1.0)
    written = json.loads(out.read_text())
    assert set(written["summary"]) >= {"sr", "spl", "ne", "osr", "tl", "ndtw", "sdtw", "threshold"}
    assert len(written["episodes"]) == 3 and written["episodes"][0]["episode_seed"] == 0
    random = evaluate_navigation("random", episodes=5, progress=False)["summary"]
    assert random["spl"] <= random["sr"] and random["ne"] > 0


def test_nav_eval_command_prints_table_and_rejects_unknown_planner(tmp_path, capsys):
    from worldsim.cli import main

    out = tmp_path / "oracle.json"
    assert main(["nav-eval", "--planner", "oracle", "--episodes", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "SR(%)" in printed and "SDTW(%)" in printed and "100.0" in printed
    assert json.loads(out.read_text())["summary"]["sr"] == 1.0
    assert main(["nav-eval", "--planner", "greedy"]) == 2
    assert "Known planners" in capsys.readouterr().err


@pytest.mark.slow
def test_scorer_trains_from_the_command_line_and_plans(tmp_path):
    from worldsim.cli import main

    workdir = tmp_path / "scorer"
    assert main(["train", "--config", "configs/nav/scorer.py:small", "--workdir", str(workdir),
                 f"--config.data.cache={tmp_path / 'corpus.npz'}"]) == 0
    result = evaluate_navigation("ground_truth", episodes=2, scorer_workdir=workdir, progress=False)
    assert 0.0 <= result["summary"]["sr"] <= 1.0 and len(result["episodes"]) == 2
