"""``checkpointing.best``: the top-k ranking, its files and the ``best`` pointer that ``load_policy`` reads."""

from __future__ import annotations

import json
from pathlib import Path

from vfp.config import BestCheckpointConfig
from vfp.engine.best import read_best, update_best
from vfp.policy.loading import resolve_checkpoint


def checkpoint(directory: Path, step: int) -> Path:
    path = directory / f"step_{step:08d}.pt"
    path.write_bytes(f"weights of step {step}".encode())
    return path


def test_the_best_k_are_kept_as_files_that_outlive_pruning(tmp_path: Path) -> None:
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    settings = BestCheckpointConfig(metric="success_rate", mode="max", keep=2)
    for step, value in [(10, 0.2), (20, 0.9), (30, 0.5), (40, 0.1)]:
        path = checkpoint(directory, step)
        update_best(directory, step, path, {"success_rate": value}, settings)
        path.unlink()  # keep-last pruning removes the step checkpoint: the best copies must survive
    assert [(e["step"], e["value"]) for e in read_best(directory)] == [(20, 0.9), (30, 0.5)]
    assert sorted(p.name for p in directory.glob("best_*.pt")) == ["best_step_00000020.pt", "best_step_00000030.pt"]
    assert (directory / "best_step_00000020.pt").read_bytes() == b"weights of step 20"
    assert resolve_checkpoint(tmp_path, "best") == directory / "best_step_00000020.pt"
    assert json.loads((directory / "best.json").read_text())["metric"] == "success_rate"


def test_min_mode_and_a_missing_metric(tmp_path: Path) -> None:
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    settings = BestCheckpointConfig(metric="loss", mode="min", keep=1)
    assert update_best(directory, 5, checkpoint(directory, 5), {"success_rate": 1.0}, settings) is None
    assert not (directory / "best").exists()
    update_best(directory, 10, checkpoint(directory, 10), {"loss": 0.5}, settings)
    update_best(directory, 20, checkpoint(directory, 20), {"loss": 0.7}, settings)
    update_best(directory, 30, checkpoint(directory, 30), {"loss": float("nan")}, settings)
    assert (directory / "best").read_text().strip() == "best_step_00000010.pt"
    assert [e["step"] for e in read_best(directory)] == [10]
    assert not (directory / "best_step_00000020.pt").exists()
