"""Helpers for the policy tests: tiny trained runs of the packaged experiments, observations to feed them.

(A uniquely named module: ``from conftest import ...`` would be ambiguous across test folders.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from vfp.config import load_experiment
from vfp.engine import TrainOptions, train

STEPS = 20


def train_tiny(name: str, run_dir: Path, data_dir: Path, *extra: str) -> Path:
    """Train packaged experiment ``name`` for a few steps on 12 generated demos (in this process)."""
    data = data_dir / f"{name.replace('/', '_')}.hdf5"
    overrides = [
        f"training.max_steps={STEPS}",
        f"checkpointing.every={STEPS}",
        f"data.path={data}",
        "data.generate.episodes=12",
        "data.batch_size=32",
        "logging.callbacks=[{type: jsonl}]",
        "evaluation.episodes=2",  # the engine's final rollout in the task: two episodes
        *extra,
    ]
    config = load_experiment(name, overrides).config
    train(config, TrainOptions(run_dir=run_dir, progress="none"))
    return run_dir


def state_history(batch: int, history: int = 2, dim: int = 4, seed: int = 0) -> np.ndarray[Any, Any]:
    """Plausible avoid_obstacle states ``(batch, history, dim)`` (float32)."""
    return np.random.default_rng(seed).normal(0.0, 0.5, (batch, history, dim)).astype(np.float32)


def vfp_cli(*args: str, cwd: Path | None = None, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m vfp ARGS`` as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "vfp", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **env},
    )
