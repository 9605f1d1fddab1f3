"""What the Weights & Biases and MLflow loggers share: the run they are told about, the run-folder file that
keeps a tracker's run id across resumes, and "warn once, then keep training" when a tracker fails.

Neither tracker is imported here; their modules (:mod:`vfp.loggers_wandb`, :mod:`vfp.loggers_mlflow`)
import them when a run starts, so a config naming them validates without the extra installed.
"""

from __future__ import annotations

import importlib
import json
import math
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TypeVar

from vfp.hookspecs import hookimpl

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
    """A tracker's lifecycle hooks, shared by the W&B and MLflow loggers.

    A subclass names its ``tracker`` and ``extra`` and implements ``_start`` (open or resume the tracker's run and
    return a handle: the run, its id), ``_log`` and ``_finish``. Every call goes through :meth:`guard`: the first
    failure warns once and turns the logger off, and training goes on.
    """

    tracker = "tracker"
    extra = "tracker"

    def __init__(self) -> None:
        self.active = False
        self.handle: Any = None
        self.last_evaluation: dict[str, float] = {}

    def require(self, module: str) -> ModuleType:
        """Import the tracker's package, or say which extra installs it."""
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(
                f"the {self.tracker} logger needs {self.tracker} ({exc}): pip install 'vfp-core[{self.extra}]'"
            ) from exc

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

    @hookimpl
    def vfp_on_train_start(self, run: TrackedRun) -> None:
        if not run.is_main:
            return
        self.active = True
        self.handle = self.guard("start", lambda: self._start(run))
        self.active = self.handle is not None

    @hookimpl
    def vfp_on_step_end(self, run: TrackedRun, step: int, metrics: Mapping[str, float]) -> None:
        self.guard("log", lambda: self._log(finite_metrics("train", metrics), step))

    @hookimpl
    def vfp_on_evaluation_end(self, run: TrackedRun, step: int, metrics: Mapping[str, float]) -> None:
        self.last_evaluation = finite_metrics("val", metrics)
        self.guard("log", lambda: self._log(self.last_evaluation, step))

    @hookimpl
    def vfp_on_train_end(self, run: TrackedRun, status: str) -> None:
        if not self.active:
            return
        self.guard("finish", lambda: self._finish(status))
        self.active = False

    def _start(self, run: TrackedRun) -> Any:
        raise NotImplementedError

    def _log(self, metrics: Mapping[str, float], step: int) -> None:
        raise NotImplementedError

    def _finish(self, status: str) -> None:
        raise NotImplementedError
