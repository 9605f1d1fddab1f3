"""`vfp train` and `vfp eval` as a user runs them: in a subprocess, with exit codes and run directories."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from engine_helpers import vfp_cli

from vfp.config import load_experiment

EXPERIMENT = """\
extends: sample/regression
training: {max_steps: 10}
logging: {every: 5}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A run of an experiment kept in a git repository, into the default run directory under cwd."""
    repo = tmp_path_factory.mktemp("repo")
    (repo / "exp.yaml").write_text(EXPERIMENT)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "exp.yaml"], check=True)
    subprocess.run([*git, "commit", "-qm", "exp"], check=True)
    result = vfp_cli("train", "exp.yaml", "--progress", "plain", cwd=repo)
    runs = list((repo / "runs").iterdir())
    assert len(runs) == 1, result.stderr
    return runs[0], result


def test_train_exits_0_and_fills_the_run_directory(trained: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    run_dir, result = trained
    assert result.returncode == 0, result.stderr
    assert run_dir.name.startswith("exp-")
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "step_00000010.pt"
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [5, 10, 10]  # two training lines, one evaluation at the end


def test_the_saved_config_is_the_resolved_one_and_loads_back(
    trained: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    run_dir, _ = trained
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["training"]["max_steps"] == 10
    assert saved["model"]["net"]["arch"] == {"type": "sample_linear", "hidden": 0, "dropout": 0.0}
    assert load_experiment(run_dir / "config.yaml").config.model_dump(mode="json") == saved


def test_env_json_records_versions_git_revision_and_command(
    trained: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    run_dir, _ = trained
    env = json.loads((run_dir / "env.json").read_text())
    repo = run_dir.parent.parent
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    assert env["git"]["commit"] == head.stdout.strip()
    assert env["git"]["dirty"] is False
    assert env["command"] == ["vfp", "train", "exp.yaml", "--progress", "plain"]
    assert {"python", "torch", "host", "platform"} <= env.keys()
    assert {(p["distribution"], p["version"]) for p in env["plugins"]} >= {("vfp-sample", "0.3.1")}


def test_plain_progress_lines_when_not_a_terminal(trained: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, result = trained
    assert "step 5/10  loss " in result.stderr
    assert "it/s  eta " in result.stderr


def test_eval_json_prints_the_final_evaluation_metrics(trained: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    run_dir, _ = trained
    result = vfp_cli("eval", str(run_dir), "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][-1]
    assert logged["split"] == "val"
    for key in ("loss", "fit", "mae", "action_mse", "mae_original_units"):
        assert metrics[key] == pytest.approx(logged[key], rel=1e-6)


def test_eval_accepts_a_checkpoint_file_and_prints_a_table(
    trained: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    run_dir, _ = trained
    result = vfp_cli("eval", str(run_dir / "checkpoints" / "step_00000010.pt"))
    assert result.returncode == 0, result.stderr
    assert "mae_original_units" in result.stdout
    assert "step 10" in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "sample/regression", "training.max_stpes=3"], "unknown key 'max_stpes' (did you mean 'max_steps'?)"),
        (["train"], "Usage"),
        (["train", "--max-steps", "3", "seed=1"], "'seed=1' looks like an override: give the experiment CONFIG first"),
        (["train", "--resume", "no/such/run"], "no such run directory or checkpoint"),
        (["eval", "no/such/run"], "no such run directory or checkpoint"),
    ],
    ids=["unknown-key", "no-args", "no-config", "missing-resume", "missing-eval"],
)
def test_config_and_usage_errors_exit_2(tmp_path: Path, args: list[str], expected: str) -> None:
    result = vfp_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr + result.stdout


def test_a_fresh_run_into_an_existing_run_exits_2(trained: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    run_dir, _ = trained
    result = vfp_cli("train", "sample/regression", "--run-dir", str(run_dir))
    assert result.returncode == 2
    assert f"vfp train --resume {run_dir}" in result.stderr


def test_a_nan_loss_exits_1_naming_term_and_step(tmp_path: Path) -> None:
    result = vfp_cli("train", "sample/regression", "trainer.nan_at_step=3", "--run-dir", str(tmp_path / "r"))
    assert result.returncode == 1
    assert "loss term 'fit' is nan at step 3" in result.stderr
