"""``status.json``: the engine records how a run stands, and ``vfp runs`` reads it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from engine_helpers import run, sample_config

from vfp.experiments._folder import read_run


def _status(run_dir: Path) -> dict[str, object]:
    record: dict[str, object] = json.loads((run_dir / "status.json").read_text())
    return record


def test_a_completed_run_records_completed_with_its_step(tmp_path: Path) -> None:
    run(sample_config("training.max_steps=6", "checkpointing.every=3"), tmp_path / "run")
    record = _status(tmp_path / "run")
    assert record["status"] == "completed"
    assert record["step"] == 6
    assert record["max_steps"] == 6
    assert record["pid"] == os.getpid()
    assert read_run(tmp_path / "run").status == "completed"


def test_a_failed_run_records_failed_with_the_reason(tmp_path: Path) -> None:
    config = sample_config("trainer.nan_at_step=5", "checkpointing.every=2", "training.max_steps=20")
    run(config, tmp_path / "run")
    record = _status(tmp_path / "run")
    assert record["status"] == "failed"
    assert "nan at step 5" in str(record["message"])
    assert read_run(tmp_path / "run").status == "failed"


def test_a_running_record_whose_process_is_gone_reads_as_failed(tmp_path: Path) -> None:
    run(sample_config("training.max_steps=4", "checkpointing.every=2"), tmp_path / "run")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = {**_status(tmp_path / "run"), "status": "running", "pid": int(dead.stdout), "host": socket.gethostname()}
    (tmp_path / "run" / "status.json").write_text(json.dumps(record))
    assert read_run(tmp_path / "run").status == "failed"
    record["pid"] = os.getpid()  # alive: this test's own process
    (tmp_path / "run" / "status.json").write_text(json.dumps(record))
    assert read_run(tmp_path / "run").status == "running"
