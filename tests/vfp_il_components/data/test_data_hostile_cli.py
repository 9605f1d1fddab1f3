"""Damaged datasets through the real command line: `vfp data inspect` and `vfp train` exit 2 with one clean line.

A representative subset of the corpus of ``test_data_hostile.py`` (every case runs in-process there), in a
subprocess as a user runs them, with a timeout: a FIFO must be refused at once, not waited on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_data_hostile import CASES, build_case

SUBSET = ["num_samples_text", "fifo", "zeroed_compressed_chunk", "unknown_task_option", "demo_as_dataset"]
TIMEOUT = 120.0
"""Generous, for a loaded machine: the refusal itself takes well under a second (see test_data_hostile.py)."""


def vfp(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "vfp", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=TIMEOUT,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "400"},
    )
    return result, time.perf_counter() - start


def assert_clean_refusal(result: subprocess.CompletedProcess[str], path: Path, name: str, max_lines: int) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= max_lines, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert str(path) in errors[0]
    for needle in CASES[name].needles:
        assert needle in errors[0], errors[0]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", SUBSET)
def test_vfp_data_inspect_refuses_cleanly(tmp_path: Path, name: str) -> None:
    path = build_case(tmp_path, name, CASES[name])
    result, _ = vfp("data", "inspect", str(path), cwd=tmp_path)
    assert_clean_refusal(result, path, name, max_lines=1)
    assert result.stdout == ""


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", SUBSET)
def test_vfp_train_refuses_cleanly_before_training(tmp_path: Path, name: str) -> None:
    path = build_case(tmp_path, name, CASES[name])
    run_dir = tmp_path / "run"
    result, _ = vfp(
        "train", "naive_flow_matching_policy/exp1", f"data.path={path}", "data.horizon=4", "--max-steps", "2",
        "--run-dir", str(run_dir), "--progress", "none", cwd=tmp_path,
    )  # fmt: skip
    assert_clean_refusal(result, path, name, max_lines=2)  # "training in RUN_DIR", then the error
    assert not list(run_dir.glob("checkpoints/*.pt"))
