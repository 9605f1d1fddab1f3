"""Built-in logger callbacks. They implement the lifecycle hooks like a third-party logger would."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vfp._builtin_plugin import JsonlLoggerConfig, TensorBoardLoggerConfig
from vfp.hookspecs import hookimpl
from vfp.lifecycle import RunInfo, RunStatus


def _inside(run_dir: Path, relative: str) -> Path:
    """``run_dir / relative``, refused when it resolves outside the run directory (a symlink, say).

    The config models refuse absolute paths and ``..`` already; this also covers configs built in
    Python without validation and links inside the run directory that point out of it.
    """
    path = run_dir / relative
    root = run_dir.resolve()
    if not path.resolve().is_relative_to(root):
        raise ValueError(f"{path} resolves to {path.resolve()}, outside the run directory {root}; nothing is written")
    return path


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


class JsonlLogger:
    """One JSON object per line: ``{"step": N, "split": "train"|"val", metric: value, ...}``.

    On resume, lines past the resumed step are dropped so the file describes one consistent run.
    """

    def __init__(self, config: JsonlLoggerConfig) -> None:
        self.config = config
        self.path: Path | None = None

    @hookimpl
    def vfp_on_train_start(self, run: RunInfo) -> None:
        if not run.is_main:
            return
        self.path = _inside(run.run_dir, self.config.filename)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and run.start_step > 0:
            kept = [
                line
                for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= run.start_step
            ]
            self.path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        elif run.start_step == 0:
            self.path.write_text("", encoding="utf-8")

    def _write(self, split: str, step: int, metrics: Mapping[str, float]) -> None:
        if self.path is None:
            return
        record: dict[str, Any] = {"step": step, "split": split}
        record.update({k: _finite_or_none(float(v)) for k, v in metrics.items()})
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    @hookimpl
    def vfp_on_step_end(self, run: RunInfo, step: int, metrics: Mapping[str, float]) -> None:
        self._write("train", step, metrics)

    @hookimpl
    def vfp_on_evaluation_end(self, run: RunInfo, step: int, metrics: Mapping[str, float]) -> None:
        self._write("val", step, metrics)


class TensorBoardLogger:
    """Scalars under ``train/`` and ``val/`` in TensorBoard event files."""

    def __init__(self, config: TensorBoardLoggerConfig) -> None:
        self.config = config
        self.writer: Any = None

    @hookimpl
    def vfp_on_train_start(self, run: RunInfo) -> None:
        if not run.is_main:
            return
        from torch.utils.tensorboard import SummaryWriter

        log_dir = _inside(run.run_dir, self.config.subdir)
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=run.start_step or None)

    @hookimpl
    def vfp_on_step_end(self, run: RunInfo, step: int, metrics: Mapping[str, float]) -> None:
        if self.writer is not None:
            for key, value in metrics.items():
                self.writer.add_scalar(f"train/{key}", float(value), step)

    @hookimpl
    def vfp_on_evaluation_end(self, run: RunInfo, step: int, metrics: Mapping[str, float]) -> None:
        if self.writer is not None:
            for key, value in metrics.items():
                self.writer.add_scalar(f"val/{key}", float(value), step)
            self.writer.flush()

    @hookimpl
    def vfp_on_train_end(self, run: RunInfo, status: RunStatus) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
