"""Stopping a `vfp train` process: SIGINT/SIGTERM stop gracefully; kill -9 mid-write loses nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import vfp_cli

from vfp.engine import find_checkpoint, load_checkpoint

ENDLESS = (
    "sample/regression",
    "--max-steps",
    "100000000",
    "--progress",
    "plain",
    "logging.every=1",
    "logging.callbacks=[{type: jsonl}]",
)


def start(run_dir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vfp", "train", *args, "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: object, process: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if process.poll() is not None:
            raise AssertionError(f"training exited early ({process.returncode}): {process.communicate()[1]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("timed out waiting for training to make progress")
        time.sleep(0.01)


def logged_lines(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def stop_with(sig: signal.Signals, run_dir: Path) -> tuple[int, str]:
    """Start an endless run, send ``sig`` once it has logged a few steps; return exit code and stderr."""
    process = start(run_dir, *ENDLESS)
    wait_for(lambda: logged_lines(run_dir) >= 3, process)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


def test_sigint_finishes_the_step_checkpoints_says_how_to_resume_and_exits_130(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    code, stderr = stop_with(signal.SIGINT, run_dir)
    assert code == 130, stderr
    step = load_checkpoint(find_checkpoint(run_dir))["step"]
    assert step >= 3
    assert f"stopped by SIGINT at step {step}" in stderr
    assert f"vfp train --resume {run_dir}" in stderr


def test_sigterm_exits_143_and_the_run_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    code, stderr = stop_with(signal.SIGTERM, run_dir)
    assert code == 143, stderr
    step = load_checkpoint(find_checkpoint(run_dir))["step"]
    assert f"stopped by SIGTERM at step {step}" in stderr
    result = vfp_cli("train", "--resume", str(run_dir), "--max-steps", str(step + 5), "--progress", "plain")
    assert result.returncode == 0, result.stderr
    assert f"resuming {run_dir}/checkpoints/step_{step:08d}.pt (step {step})" in result.stderr
    assert load_checkpoint(find_checkpoint(run_dir))["step"] == step + 5


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if ".tmp-" in p.name] if folder.exists() else []


def test_kill_9_during_a_checkpoint_write_leaves_the_previous_one_loadable(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    folder = run_dir / "checkpoints"
    big = ("data.in_dim=1536", "model.net.arch.hidden=1536", "checkpointing.every=1", "checkpointing.keep_last=2")
    for _ in range(5):  # the kill must land inside a write; retry in the rare case it lands just after one
        process = start(run_dir, *ENDLESS, *big)
        wait_for(lambda: (folder / "latest").exists() and bool(temporaries(folder)), process)
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)
        if temporaries(folder):
            break
        shutil.rmtree(run_dir)
    assert temporaries(folder), "never caught a checkpoint write in progress"
    step = load_checkpoint(find_checkpoint(run_dir))["step"]
    result = vfp_cli("train", "--resume", str(run_dir), "--max-steps", str(step + 1), "--progress", "plain")
    assert result.returncode == 0, result.stderr
    assert load_checkpoint(find_checkpoint(run_dir))["step"] == step + 1
    assert not temporaries(folder)
