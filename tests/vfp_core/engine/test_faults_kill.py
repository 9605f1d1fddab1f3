"""`kill -9` at random points of training, then resume, several times: the final weights are
bit-identical to those of an uninterrupted run (seeded, so a failure reproduces)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine_helpers import assert_weights_equal, final_weights, run, sample_config

from vfp.engine import find_checkpoint, load_checkpoint

SEED = 1301
KILLS = 3
SETTINGS = (
    "training.max_steps=160",
    "training.ema.enabled=true",
    "threads=1",
    "logging.every=1",
    "checkpointing.every=7",
    "checkpointing.keep_last=2",
    "evaluation.every=25",
    "model.net.arch.hidden=8",
    "model.net.arch.dropout=0.2",
    "optimizers.default.momentum=0.9",
    "optimizers.default.warmup_steps=20",
)


def logged_step(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return -1
    steps = [json.loads(line)["step"] for line in lines if line.strip().endswith("}")]
    return max(steps, default=-1)


def start(run_dir: Path, first: bool) -> subprocess.Popen[bytes]:
    args = ["sample/regression", *SETTINGS, "--run-dir", str(run_dir)] if first else ["--resume", str(run_dir)]
    return subprocess.Popen(
        [sys.executable, "-m", "vfp", "train", *args, "--progress", "none"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def test_random_kill_9s_then_resume_end_bit_identical_to_an_uninterrupted_run(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    whole = tmp_path / "whole"
    assert run(sample_config(*SETTINGS), whole).status == "completed"

    killed = tmp_path / "killed"
    kills = 0
    for attempt in range(KILLS + 1):
        reached = logged_step(killed)
        process = start(killed, first=attempt == 0)
        if attempt < KILLS:
            # wait until it trains past where it was, then kill at a random moment
            deadline = time.monotonic() + 60
            while logged_step(killed) <= reached + 2 and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.25))
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                kills += 1
        _, stderr = process.communicate(timeout=120)
        if attempt == KILLS or process.returncode == 0:
            assert process.returncode == 0, stderr.decode()
            break
        assert process.returncode == -signal.SIGKILL, stderr.decode()
    assert kills >= 2, "the runs ended before they could be killed"
    assert load_checkpoint(find_checkpoint(killed))["step"] == 160
    assert_weights_equal(final_weights(whole), final_weights(killed))
    assert_weights_equal(final_weights(whole, "ema"), final_weights(killed, "ema"))
    assert not [p for p in (killed / "checkpoints").iterdir() if ".tmp-" in p.name]
