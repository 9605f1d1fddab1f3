"""What the Weights & Biases and MLflow loggers share: the run they are told about, the run-folder file that
keeps a tracker's run id across resumes, and "warn once, then keep training" when a tracker fails.

Neither tracker is imported here; their modules (:mod:`vfp.loggers_wandb`, :mod:`vfp.loggers_mlflow`)
import them when a run starts, so a config naming them validates without the extra installed.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

__all__ = ["TrackedRun", "TrackerLogger", "read_run_id", "write_run_id"]

T = TypeVar("T")


class TrackedRun(Protocol):
    """The parts of the lifecycle hooks' ``run`` these loggers read."""

    @property
    def run_dir(self) -> Path: ...

    @property
    def start_step(self) -> int: ...

    @property
    def is_main(self) -> bool: ...

    @property
    def config(self) -> Any: ...


def read_run_id(path: Path) -> dict[str, Any] | None:
    """The tracker's record kept in the run folder (None for a fresh run or an unreadable file)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_run_id(path: Path, record: Mapping[str, Any]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(dict(record), indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)


def finite_metrics(prefix: str, metrics: Mapping[str, float]) -> dict[str, float]:
    """``{prefix/key: value}`` for the finite values (trackers reject or mangle NaN and Inf)."""
    values = {f"{prefix}/{key}": float(value) for key, value in metrics.items()}
    return {key: value for key, value in values.items() if math.isfinite(value)}


def resolved_config(run: TrackedRun) -> dict[str, Any]:
    config = run.config
    dumped = config.model_dump(mode="json") if hasattr(config, "model_dump") else dict(config)
    return dict(dumped)


def environment(run: TrackedRun) -> dict[str, Any]:
    """The run's env.json without the records of earlier sessions."""
    record = read_run_id(run.run_dir / "env.json") or {}
    record.pop("previous", None)
    return record


class TrackerLogger:
    """Calls into a tracker through :meth:`guard`: the first failure warns once and turns the logger off."""

    tracker = "tracker"

    def __init__(self) -> None:
        self.active = False
        self.last_evaluation: dict[str, float] = {}

    def guard(self, what: str, call: Callable[[], T]) -> T | None:
        if not self.active and what != "start":
            return None
        try:
            return call()
        except Exception as exc:  # a tracker's failure must never stop training
            self.active = False
            warnings.warn(
                f"{self.tracker} logger: {what} failed ({type(exc).__name__}: {exc}); "
                f"training goes on without {self.tracker}",
                stacklevel=2,
            )
            return None
