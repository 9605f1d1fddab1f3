"""Deleting keys from the command line (``~KEY.PATH``) with `vfp config show|validate` and `vfp train`."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from vfp_test_support import vfp


def test_show_applies_a_tilde_deletion(tmp_path: Path) -> None:
    child = tmp_path / "child.yaml"
    child.write_text("extends: sample/regression\ntraining: {max_steps: 5, grad_clip_norm: 3.0}\n")
    result = vfp("config", "show", str(child), "~training.grad_clip_norm", "--json")
    assert result.returncode == 0, result.stderr
    training = json.loads(result.stdout)["training"]
    assert (training["max_steps"], training["grad_clip_norm"]) == (5, 1.0)  # the default again


def test_validate_names_a_deletion_of_a_missing_key() -> None:
    result = vfp("config", "validate", "sample/regression", "~losses.fti")
    assert result.returncode == 2
    assert "nothing to delete: 'losses' has no key 'fti' (it has: fit)" in result.stderr


def test_validate_reports_what_a_deletion_leaves_missing() -> None:
    result = vfp("config", "validate", "sample/regression", "~optimizers.default")
    assert result.returncode == 2
    assert "model.net.optimizer: no optimizer named 'default'" in result.stderr


def test_train_takes_a_leading_tilde_word_for_a_misplaced_override() -> None:
    result = vfp("train", "~losses.fit")
    assert result.returncode == 2
    assert "looks like an override: give the experiment CONFIG first" in result.stderr


def test_train_applies_a_tilde_deletion(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = vfp(
        "train", "sample/regression", "~training.grad_clip_norm", "--max-steps", "2", "--run-dir", str(run_dir),
        "--progress", "none", env={"OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["training"]["grad_clip_norm"] == 1.0  # sample/regression sets null; deleted, the default applies


def test_train_refuses_an_unused_loss_at_the_line_that_wrote_it_in_an_extending_file(tmp_path: Path) -> None:
    child = tmp_path / "child.yaml"
    child.write_text("extends: sample/regression\nlosses:\n  spare: {type: sample_huber}\n")
    expected = f"{child}:3: losses.spare: trainer 'sample_regression' does not use this loss (it uses: fit)"
    result = vfp("train", str(child), "--max-steps", "1", "--run-dir", str(tmp_path / "run"), "--progress", "none")
    assert result.returncode == 2
    assert expected in result.stderr
