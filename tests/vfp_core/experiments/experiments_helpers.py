"""Helpers for the experiment tests: real runs trained through `vfp train`, and hand-written run folders
(exactly the files the engine writes) for states that are slow or racy to produce, such as a killed run.

(A uniquely named module: ``from conftest import ...`` would be ambiguous across test folders.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

QUICK = (
    "logging.callbacks=[{type: jsonl}]",
    "logging.every=5",
    "evaluation.every=10",
    "checkpointing.every=0",
    "threads=1",
)
"""A 20-step sample/regression run: metrics every 5 steps, evaluations at 10 and 20, one checkpoint."""


def vfp(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m vfp ARGS`` as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "vfp", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **(env or {})},
    )


def write_run(
    path: Path,
    *,
    seed: int = 0,
    lr: float = 0.05,
    max_steps: int = 20,
    val_losses: Sequence[float] = (0.5, 0.3),
    checkpoint_steps: Sequence[int] = (20,),
    age_s: float = 3600.0,
    extra_config: dict[str, Any] | None = None,
) -> Path:
    """A run folder as the engine leaves it: config.yaml, env.json, metrics.jsonl, checkpoints/.

    Training lines every 5 steps up to the last checkpoint (or max_steps), validation lines evenly spaced;
    the files' modification times are set ``age_s`` seconds in the past.
    """
    path.mkdir(parents=True)
    config = {
        "name": None,
        "seed": seed,
        "data": {"type": "sample_regression", "batch_size": 32},
        "optimizers": {"default": {"type": "sample_sgd", "lr": lr}},
        "trainer": {"type": "sample_regression"},
        "training": {"max_steps": max_steps},
        **(extra_config or {}),
    }
    (path / "config.yaml").write_text("# resolved config of this run\n" + yaml.safe_dump(config), encoding="utf-8")
    env = {
        "started": "2026-01-02T03:04:05+00:00",
        "command": ["vfp", "train", "regression.yaml"],
        "config_source": "/somewhere/regression.yaml",
        "git": {"commit": "0123456789abcdef", "dirty": True, "root": "/somewhere"},
        "previous": [],
    }
    (path / "env.json").write_text(json.dumps(env), encoding="utf-8")
    last = max(checkpoint_steps, default=max_steps)
    lines = [{"step": s, "split": "train", "loss": 1.0 / s} for s in range(5, last + 1, 5)]
    every = max(last // max(len(val_losses), 1), 1)
    for index, loss in enumerate(val_losses):
        lines.append({"step": every * (index + 1), "split": "val", "loss": loss, "success_rate": 1.0 - loss})
    lines.sort(key=lambda line: (line["step"], line["split"] == "val"))
    (path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    checkpoints = path / "checkpoints"
    checkpoints.mkdir()
    for step in checkpoint_steps:
        (checkpoints / f"step_{step:08d}.pt").write_bytes(b"not a real checkpoint")
    if checkpoint_steps:
        (checkpoints / "latest").write_text(f"step_{max(checkpoint_steps):08d}.pt\n", encoding="utf-8")
    age(path, age_s)
    return path


def age(path: Path, seconds: float) -> None:
    """Set the modification time of a run folder's files ``seconds`` in the past."""
    moment = time.time() - seconds
    for item in [path, *path.rglob("*")]:
        os.utime(item, (moment, moment))


def wandb_records(path: Path) -> list[Any]:
    """The records of a W&B run file (``run-ID.wandb``), read with W&B's own protobuf messages.

    The file is W&B's transaction log: a 7-byte header (``:W&B``, magic, version), then records in
    32 KiB blocks, each chunk a 7-byte header (checksum, little-endian length, type: full, first,
    middle, last) and its bytes.
    """
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    block, position, pending, payloads = 32768, 7, b"", []
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:  # the rest of a block too short for a chunk header is padding
            position += left
            continue
        length = int.from_bytes(data[position + 4 : position + 6], "little")
        kind = data[position + 6]
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind == 1:
            payloads.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            payloads.append(pending + chunk)
        else:
            break
    records = []
    for payload in payloads:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        records.append(record)
    return records
