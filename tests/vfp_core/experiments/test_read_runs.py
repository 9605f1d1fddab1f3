"""Reading run folders: status, metrics, and clear errors for what is not a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from experiments_helpers import age, write_run

from vfp.experiments import RunReadError, expand_runs, read_run
from vfp.experiments.compare import compare_runs, differing_keys


def test_a_finished_run_reads_as_completed_with_its_metrics(tmp_path: Path) -> None:
    run = read_run(write_run(tmp_path / "a", val_losses=(0.5, 0.2, 0.3)))
    assert run.status == "completed"
    assert (run.steps_done, run.planned_steps, run.seed) == (20, 20, 0)
    assert run.experiment == "regression"  # the config's source file, since `name` is null
    assert run.git_revision == "0123456789+dirty"
    assert run.main_metric() == "val/success_rate"
    loss = run.series("loss")  # a bare name is the validation series
    assert loss.name == "val/loss"
    assert (loss.last, loss.best()) == (0.3, 0.2)
    assert run.series("val/success_rate").best() == pytest.approx(0.8)  # larger is better for a success rate
    assert run.series("train/loss").steps == (5, 10, 15, 20)


def test_status_interrupted_failed_and_running(tmp_path: Path) -> None:
    # stopped by a signal: the engine checkpoints at the step it stops at
    interrupted = read_run(write_run(tmp_path / "i", max_steps=40, checkpoint_steps=(10,)))
    assert interrupted.status == "interrupted"
    assert interrupted.steps_done == 10
    # a crash or a non-finite loss: metrics went on past the last checkpoint
    failed_path = write_run(tmp_path / "f", max_steps=40, checkpoint_steps=(10,))
    with (failed_path / "metrics.jsonl").open("a") as handle:
        handle.write(json.dumps({"step": 15, "split": "train", "loss": 0.1}) + "\n")
    age(failed_path, 3600)
    assert read_run(failed_path).status == "failed"
    # files changed a moment ago and not at the planned end
    running = read_run(write_run(tmp_path / "r", max_steps=40, checkpoint_steps=(10,), age_s=0))
    assert running.status == "running"
    # completed wins over recent changes
    assert read_run(write_run(tmp_path / "c", age_s=0)).status == "completed"


def test_a_half_written_last_line_is_ignored_with_a_warning(tmp_path: Path) -> None:
    path = write_run(tmp_path / "killed", max_steps=40, checkpoint_steps=(10,))
    with (path / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 15, "split": "tra')  # the process was killed mid-write
    age(path, 3600)
    run = read_run(path)
    assert run.truncated_metrics
    assert max(r["step"] for r in run.records) == 10
    assert run.status == "failed"
    assert any("half written" in w and "metrics.jsonl" in w for w in run.warnings)


def test_a_corrupt_line_in_the_middle_names_file_and_line(tmp_path: Path) -> None:
    path = write_run(tmp_path / "bad")
    lines = (path / "metrics.jsonl").read_text().splitlines()
    lines[2] = "garbage"
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(RunReadError, match=r"metrics\.jsonl:3: not a metrics record"):
        read_run(path)


def test_a_folder_that_is_not_a_run_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hello")
    with pytest.raises(RunReadError, match="not a run folder"):
        read_run(tmp_path / "notes")
    with pytest.raises(RunReadError, match="is not a run folder and holds none"):
        expand_runs([str(tmp_path / "notes")])
    with pytest.raises(RunReadError, match="matches no"):
        expand_runs([str(tmp_path / "nothing-*")])
    with pytest.raises(RunReadError, match="no such folder"):
        expand_runs([str(tmp_path / "missing")])


def test_expand_finds_runs_below_a_folder_and_through_globs(tmp_path: Path) -> None:
    for name in ("x-seed0", "x-seed1", "y"):
        write_run(tmp_path / "runs" / name)
    write_run(tmp_path / "runs" / "sweep" / "trial-0000")
    found = expand_runs([str(tmp_path / "runs")])
    assert [p.name for p in found] == ["trial-0000", "x-seed0", "x-seed1", "y"]
    assert [p.name for p in expand_runs([str(tmp_path / "runs" / "x-*"), str(tmp_path / "runs" / "x-seed0")])] == [
        "x-seed0",
        "x-seed1",
    ]


def test_differing_keys_skip_equal_values_and_count_missing_ones() -> None:
    a = {"a": {"b": 1, "c": [1, 2]}, "seed": 0}
    b = {"a": {"b": 2, "c": [1, 2]}, "seed": 1, "extra": True}
    assert differing_keys([a, b], ignore=("seed",)) == {"a.b": [1, 2], "extra": [None, True]}


def test_runs_that_differ_only_by_seed_are_grouped_with_mean_std_n(tmp_path: Path) -> None:
    runs = [
        read_run(write_run(tmp_path / "lr05-s0", seed=0, val_losses=(0.5, 0.2))),
        read_run(write_run(tmp_path / "lr05-s1", seed=1, val_losses=(0.3, 0.4))),
        read_run(write_run(tmp_path / "lr01-s0", seed=0, lr=0.01, val_losses=(0.9, 0.8))),
    ]
    comparison = compare_runs(runs, ["val/loss"])
    assert list(comparison.differing) == ["optimizers.default.lr"]
    assert [len(g.runs) for g in comparison.groups] == [2, 1]
    mean, std, n = comparison.groups[0].stats("val/loss")
    assert (mean, n) == (pytest.approx(0.3), 2)
    assert std == pytest.approx(0.1414, abs=1e-4)
    best_mean, _, _ = comparison.groups[0].stats("val/loss", "best")
    assert best_mean == pytest.approx(0.25)
    data = comparison.to_json()
    assert data["groups"][1]["metrics"]["val/loss"] == {"mean": pytest.approx(0.8), "std": None, "n": 1}
    assert data["runs"][2]["config"] == {"optimizers.default.lr": 0.01}
