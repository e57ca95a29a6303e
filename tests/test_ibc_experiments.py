"""The Table-3 grid driver: cell parsing, the CPU-sized configs it names, and the report."""

import json

import pytest

from worldsim.agents.ibc.experiments import Cell, format_cell, report
from worldsim.configs.ibc import base, blockpush, particle


def test_cell_parses_and_names_its_workdir():
    cell = Cell.parse("particle:cpu_dfo,n_dim=8:2")
    assert cell == Cell("particle", "cpu_dfo,n_dim=8", 2)
    assert cell.name() == "particle_cpu_dfo_n_dim_8_s2"


@pytest.mark.parametrize("text, message", [("blockpush:cpu_dfo", "CONFIG:ARGUMENT:SEED"),
                                           ("blockpush:cpu_dfo:x", "CONFIG:ARGUMENT:SEED"),
                                           ("nosuch:cpu_dfo:0", "known: ")])
def test_bad_cells_are_refused_with_the_expected_form(text, message):
    with pytest.raises(ValueError, match=message):
        Cell.parse(text)


def test_cpu_methods_are_the_documented_sizes():
    dfo = blockpush.get_config("cpu_dfo")
    assert (dfo.model.width, dfo.model.depth, dfo.ibc.num_negatives, dfo.train.steps) == (
        64, 4, 64, 3000)
    assert blockpush.get_config("cpu").to_dict() == dfo.to_dict()  # the demo's old name
    langevin = blockpush.get_config("cpu_langevin")
    assert (langevin.ibc.sampler, langevin.ibc.langevin_steps, langevin.ibc.num_negatives) == (
        "langevin", 30, 8)
    mdn = blockpush.get_config("cpu_mdn")
    assert (mdn.agent, mdn.model.width, mdn.train.steps) == ("mdn", 256, 1500)
    assert particle.get_config("cpu_mse,n_dim=16").dataset == "data/particle_16d"
    with pytest.raises(ValueError, match="cpu_dfo"):
        base.method_config("cpu_sgd", "worldsim/BlockPush-v0", "data/blockpush")


def _fake_run(root, name, success, seed, cpu=100.0, max_reward=0.5):
    workdir = root / f"{name}_s{seed}"
    workdir.mkdir(parents=True)
    (workdir / "eval_info.json").write_text(json.dumps(
        {"overall": {"pc_success": success, "avg_max_reward": max_reward, "n_episodes": 100}}))
    (workdir / "train_time.json").write_text(json.dumps({"user_s": cpu, "system_s": 0.0}))
    (workdir / "config.json").write_text(json.dumps({"train": {"steps": 3000}}))


def test_report_gives_mean_and_std_over_seeds_and_marks_missing_cells(tmp_path):
    for seed, success in enumerate([90.0, 80.0, 100.0]):
        _fake_run(tmp_path, "blockpush_cpu_dfo", success, seed)
    _fake_run(tmp_path, "multimodal_cpu_mse", 40.0, 0, cpu=31.4)
    table = report(tmp_path, ["cpu_dfo", "cpu_mse"], ["blockpush", "multimodal"])
    rows = table.splitlines()
    assert rows[2].startswith("| cpu_dfo | 90.0 ± 10.0 (3 seeds, 100 ep., 100 CPU-s each)")
    assert rows[2].endswith("| not run |")
    assert rows[3] == "| cpu_mse | not run | 40 (1 seed, 100 ep., 31 CPU-s) |"


def test_format_cell_of_one_seed_has_no_spread():
    assert format_cell([{"success": 55.0, "episodes": 50, "train_cpu_s": 9.6}]) == (
        "55 (1 seed, 50 ep., 10 CPU-s)")


def test_report_of_partial_progress_uses_the_mean_best_reward(tmp_path):
    for seed, max_reward in enumerate([0.2, 0.3]):
        _fake_run(tmp_path, "multimodal_cpu_dfo", 0.0, seed, max_reward=max_reward)
    table = report(tmp_path, ["cpu_dfo"], ["multimodal"], metric="avg_max_reward")
    assert table.splitlines()[2] == "| cpu_dfo | 0.25 ± 0.07 (2 seeds, 100 ep., 100 CPU-s each) |"
    with pytest.raises(ValueError, match="avg_max_reward"):
        report(tmp_path, ["cpu_dfo"], ["multimodal"], metric="reward")
