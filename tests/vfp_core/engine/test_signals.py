"""Stopping a `vfp train` process: SIGINT/SIGTERM stop gracefully; kill -9 mid-write loses nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from engine_helpers import assert_weights_equal, final_weights, run, sample_config

import vfp
from vfp.engine import find_checkpoint, load_checkpoint
from vfp.engine.resume import prepare_resume

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


def test_sigint_to_vfp_train_checkpoints_says_how_to_resume_and_exits_130(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    process = start(run_dir, *ENDLESS)
    wait_for(lambda: logged_lines(run_dir) >= 3, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    step = load_checkpoint(find_checkpoint(run_dir))["step"]
    assert step >= 3
    assert f"stopped by SIGINT at step {step}" in stderr
    assert f"vfp train --resume {run_dir}" in stderr


class SignalAt:
    """Sends this process a signal from inside a step's hook, as if it arrived during that step."""

    def __init__(self, sig: signal.Signals, step: int) -> None:
        self.sig = sig
        self.step = step

    @vfp.hookimpl
    def vfp_on_step_end(self, run: object, step: int, metrics: object) -> None:
        if step == self.step:
            os.kill(os.getpid(), self.sig)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_after_the_step_with_a_checkpoint(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    host = vfp._plugins.get_host()
    sender = SignalAt(sig, 4)
    host.register_object(sender, "signal-sender")
    try:
        result = run(sample_config("training.max_steps=50", "logging.every=1"), tmp_path / "run")
    finally:
        host.unregister_object(sender)
    assert (result.status, result.step, result.exit_code) == ("interrupted", 4, code)
    assert load_checkpoint(find_checkpoint(tmp_path / "run"))["step"] == 4
    assert signal.getsignal(sig) is not sender  # the engine's handlers are gone after the run


def test_a_run_stopped_by_sigterm_resumes_to_the_same_weights(tmp_path: Path) -> None:
    common = ("training.max_steps=9", "logging.every=1", "model.net.arch.hidden=8", "optimizers.default.momentum=0.9")
    run(sample_config(*common), tmp_path / "whole")
    host = vfp._plugins.get_host()
    sender = SignalAt(signal.SIGTERM, 5)
    host.register_object(sender, "signal-sender")
    try:
        run(sample_config(*common), tmp_path / "stopped")
    finally:
        host.unregister_object(sender)
    config, point = prepare_resume(tmp_path / "stopped")
    assert point.payload["step"] == 5
    assert run(config, tmp_path / "stopped", resume=point).status == "completed"
    assert_weights_equal(final_weights(tmp_path / "whole"), final_weights(tmp_path / "stopped"))


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
    config, point = prepare_resume(run_dir, [f"training.max_steps={point_step(run_dir) + 1}"])
    assert run(config, run_dir, resume=point).status == "completed"
    assert load_checkpoint(find_checkpoint(run_dir))["step"] == point.payload["step"] + 1
    assert not temporaries(folder)


def point_step(run_dir: Path) -> int:
    step: int = load_checkpoint(find_checkpoint(run_dir))["step"]
    return step
