"""The ``worldsim`` command line: help, envs, collect, skeleton commands, error handling."""

from __future__ import annotations

import subprocess
import sys

import pytest

from worldsim.cli import main
from worldsim.data import load_dataset
from worldsim.envs import ENV_IDS


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worldsim.cli", *args], capture_output=True,
                          text=True, timeout=60)


def test_help_lists_commands_and_an_example():
    result = _run("--help")
    assert result.returncode == 0
    for command in ("envs", "collect", "train", "eval", "demo"):
        assert f"    {command}" in result.stdout
    assert "example:" in result.stdout and "worldsim collect --env" in result.stdout


def test_no_command_prints_help_and_fails():
    result = _run()
    assert result.returncode == 2 and "COMMAND" in result.stderr


def test_envs_lists_every_id_with_spaces(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    for env_id in ENV_IDS:
        assert env_id in out
    assert "worldsim/Particle-v0  (step limit 50)" in out
    assert "pos_agent (2,) float32" in out
    assert "Box(0.0, 1.0, (2,), float32)" in out


def test_unknown_env_id_exits_2_listing_known_ids():
    result = _run("collect", "--env", "worldsim/Particle-v9", "--episodes", "1", "--out", "unused")
    assert result.returncode == 2
    assert result.stderr.startswith("worldsim: error: Unknown environment id 'worldsim/Particle-v9'")
    assert all(env_id in result.stderr for env_id in ENV_IDS)
    assert "Traceback" not in result.stderr


def test_collect_prints_summary_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "particle"
    argv = ["collect", "--env", "worldsim/Particle-v0", "--episodes", "2", "--out", str(out)]
    assert main(argv) == 0
    summary = capsys.readouterr().out
    assert "collected 2 oracle episodes of worldsim/Particle-v0" in summary
    assert "success rate" in summary and str(out) in summary
    assert len(load_dataset(out)) == 2
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("worldsim: error: ") and "--overwrite" in err and str(out) in err
    assert main(argv + ["--overwrite", "--policy", "random", "--seed", "3"]) == 0
    assert load_dataset(out).metadata["worldsim"]["policy"] == "random"


@pytest.mark.parametrize("argv", [["--episodes", "0"], ["--noise-std", "-1"],
                                  ["--obs-mode", "depth"], ["--policy", "expert"]])
def test_bad_collect_arguments_exit_2(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["collect", "--env", "worldsim/Particle-v0", "--episodes", "1",
              "--out", str(tmp_path / "x"), *argv])
    assert exit_info.value.code == 2
    assert "worldsim collect: error:" in capsys.readouterr().err


def test_train_with_missing_config_exits_2(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "nope.py"), "--workdir", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_train_refuses_unknown_override_naming_nearest_keys(tmp_path, capsys):
    argv = ["train", "--config", "configs/ibc/particle.py", "--workdir", str(tmp_path),
            "--config.train.step=5"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no key 'train.step'" in err and "train.steps" in err


def test_eval_without_checkpoint_says_so(tmp_path, capsys):
    assert main(["eval", "--workdir", str(tmp_path), "--episodes", "1"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_override_outside_train_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["envs", "--config.train.steps=3"])


@pytest.mark.slow
def test_demo_smoke_run(tmp_path, capsys):
    code = main(["demo", "--episodes", "20", "--num-envs", "1", "--videos", "1",
                 "--eval-episodes", "2", "--steps-scale", "0.01", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "implicit BC (IBC, DFO)" in out and "explicit BC (MSE)" in out
    assert (tmp_path / "plots" / "energy_landscape.png").stat().st_size > 0
    assert list((tmp_path / "implicit" / "videos").glob("*.mp4"))
    assert (tmp_path / "implicit" / "eval_info.json").exists()
