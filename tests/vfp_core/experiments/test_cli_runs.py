"""`vfp train --seeds`, `vfp runs list|compare` and `vfp plot` on real runs, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from experiments_helpers import QUICK, age, vfp, write_run

from vfp.experiments.seeds import parse_seeds


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/base-seed0, runs/base-seed1 (two seeds at once) and runs/slow-seed0 (another learning rate)."""
    root = tmp_path_factory.mktemp("experiments")
    seeds = vfp(
        "train", "sample/regression", *QUICK, "--max-steps", "20", "--seeds", "0,1", "--parallel", "2",
        "--run-dir", "runs/base", cwd=root,
    )  # fmt: skip
    assert seeds.returncode == 0, seeds.stderr
    assert "compare them with: vfp runs compare 'runs/base-seed*'" in seeds.stderr
    slow = vfp(
        "train", "sample/regression", *QUICK, "optimizers.default.lr=0.005", "--max-steps", "20", "--seeds", "0",
        "--run-dir", "runs/slow", "--progress", "none", cwd=root,
    )  # fmt: skip
    assert slow.returncode == 0, slow.stderr
    return root


def test_seeds_make_one_run_per_seed_that_differ_only_by_seed(trained: Path) -> None:
    runs = trained / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["base-seed0", "base-seed1", "slow-seed0"]
    for seed in (0, 1):
        run = runs / f"base-seed{seed}"
        assert f"seed: {seed}\n" in (run / "config.yaml").read_text()
        assert (run / "checkpoints" / "step_00000020.pt").exists()
        assert "training in" in (run / "train.log").read_text()  # --parallel 2: each seed logs to its folder
    assert not (runs / "slow-seed0" / "train.log").exists()  # one at a time: output goes to the terminal
    first = (runs / "base-seed0" / "metrics.jsonl").read_text()
    second = (runs / "base-seed1" / "metrics.jsonl").read_text()
    assert first != second  # different seeds, different runs


def test_runs_list_json_describes_each_run(trained: Path) -> None:
    result = vfp("runs", "list", "--json", cwd=trained)  # DIR defaults to ./runs
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"base-seed0", "base-seed1", "slow-seed0"}
    row = rows["base-seed1"]
    assert (row["experiment"], row["trainer"], row["seed"]) == ("regression", "sample_regression", 1)
    assert (row["steps_done"], row["steps_planned"], row["status"]) == (20, 20, "completed")
    assert row["metric"] == "val/loss"
    lines = (trained / "runs" / "base-seed1" / "metrics.jsonl").read_text().splitlines()
    val = [json.loads(line)["loss"] for line in lines if '"split": "val"' in line]
    assert len(val) == 2
    assert (row["last"], row["best"]) == (val[-1], min(val))
    assert row["git"]  # the packaged config lives in this git repository
    table = vfp("runs", "list", "runs", cwd=trained, env={"COLUMNS": "200"})
    assert table.returncode == 0
    assert "base-seed0" in table.stdout
    assert "completed" in table.stdout


def test_runs_compare_shows_the_differing_key_and_groups_seeds(trained: Path) -> None:
    result = vfp("runs", "compare", "runs/*", "--metric", "val/loss", "-m", "train/loss", "--json", cwd=trained)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["differing_keys"] == ["optimizers.default.lr"]
    groups = {g["config"]["optimizers.default.lr"]: g for g in data["groups"]}
    assert groups["0.05"]["seeds"] == [0, 1]
    assert groups["0.005"]["seeds"] == [0]
    per_run = {Path(r["path"]).name: r["metrics"]["val/loss"] for r in data["runs"]}
    stats = groups["0.05"]["metrics"]["val/loss"]
    assert stats["n"] == 2
    assert stats["mean"] == pytest.approx((per_run["base-seed0"] + per_run["base-seed1"]) / 2)
    assert stats["std"] > 0
    table = vfp("runs", "compare", "runs/base-seed*", "runs/slow-seed0", cwd=trained, env={"COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    assert "seed groups: mean ± std (n)" in table.stdout
    assert "(2)" in table.stdout


def test_plot_writes_a_png_of_the_runs(trained: Path) -> None:
    result = vfp("plot", "runs", "-o", "out/curves.png", cwd=trained)
    assert result.returncode == 0, result.stderr
    png = trained / "out" / "curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000


@pytest.mark.parametrize("command", [["runs", "list", "--json"], ["runs", "compare", "runs/*", "--json"]])
def test_runs_list_and_compare_never_import_torch(trained: Path, command: list[str]) -> None:
    probe = (
        "import sys\n"
        "from vfp.cli import main\n"
        f"try:\n    main({command!r})\nexcept SystemExit as exc:\n    code = exc.code\nelse:\n    code = 0\n"
        "heavy = sorted(m for m in ('torch', 'numpy', 'matplotlib') if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=trained, check=False)
    assert result.returncode == 0, result.stderr
    assert "HEAVY=\n" in result.stderr


def test_bad_input_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    write_run(tmp_path / "runs" / "x")
    cases = {
        ("runs", "compare", "runs/nothing-*"): "runs/nothing-*: matches no",
        ("runs", "list", "notes"): "notes: is not a run folder and holds none",
        ("runs", "list", "gone"): "gone: no such folder",
        ("plot", "missing"): "missing: no such folder",
        ("runs", "compare", "notes", "--stat", "median"): "--stat must be one of last, best, last3",
        ("runs", "compare", "runs/x", "-m", "val/los"): "no run has the metric 'val/los'; the runs have: train/loss,",
        ("plot", "runs/x", "-m", "val/sucess_rate"): "no run has the metric 'val/sucess_rate'",
    }
    for args, message in cases.items():
        result = vfp(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert message in " ".join(result.stderr.split()), (args, result.stderr)


def test_a_killed_run_is_listed_as_failed_with_a_warning(tmp_path: Path) -> None:
    path = write_run(tmp_path / "runs" / "killed", max_steps=40, checkpoint_steps=(10,))
    with (path / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 15, "spl')
    age(path, 3600)
    result = vfp("runs", "list", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["status"] == "failed"
    assert "metrics.jsonl: the last line is half written" in " ".join(result.stderr.split())


def test_a_corrupt_metrics_file_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    path = write_run(tmp_path / "runs" / "bad")
    text = (path / "metrics.jsonl").read_text().splitlines()
    text[1] = "{oops"
    (path / "metrics.jsonl").write_text("\n".join(text) + "\n")
    result = vfp("runs", "compare", "runs/bad", cwd=tmp_path)
    assert result.returncode == 2
    assert "metrics.jsonl:2: not a metrics record" in " ".join(result.stderr.split())


def test_seeds_usage_errors_exit_2_before_training(tmp_path: Path) -> None:
    cases = {
        ("--seeds", "0,x"): "--seeds '0,x': expected integers",
        ("--seeds", "1,1"): "seed 1 is given twice",
        ("--seeds", "0,1", "--seed", "3"): "give either --seed or --seeds",
        ("--parallel", "2"): "--parallel is for --seeds",
        ("--seeds", "0", "training.max_stepz=3"): "training.max_stepz",
    }
    for args, message in cases.items():
        result = vfp("train", "sample/regression", *args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
    assert not (tmp_path / "runs").exists()


def test_parse_seeds_ranges_and_lists() -> None:
    assert parse_seeds("0,1,2") == [0, 1, 2]
    assert parse_seeds("0-2, 7") == [0, 1, 2, 7]
    with pytest.raises(ValueError, match="the range ends before it starts"):
        parse_seeds("3-1")
