"""The layout of a run directory, shared by the command line (torch-free) and the engine.

::

    RUN_DIR/
      config.yaml      the resolved config (defaults filled in); `vfp train --resume` reads the checkpoint's copy
      env.json         Python, torch, vfp plugin distributions, git revision, host, command line
      metrics.jsonl    one JSON object per logged step (the jsonl logger)
      tensorboard/     event files (the tensorboard logger)
      checkpoints/     step_XXXXXXXX.pt files and the `latest` pointer
      status.json      how the run stands: running, completed, interrupted or failed, with step, pid, host

This module imports neither torch nor the engine: ``vfp train`` decides where a run goes, and
refuses a directory that already holds one, before torch is imported.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "CHECKPOINTS_DIR",
    "CONFIG_FILE",
    "ENV_FILE",
    "LATEST_POINTER",
    "STATUS_FILE",
    "RunLayout",
    "checkpoint_path",
    "default_run_dir",
    "holds_a_run",
    "is_step_checkpoint_name",
    "list_step_checkpoints",
    "run_dir_of",
]

CHECKPOINTS_DIR: Final = "checkpoints"
LATEST_POINTER: Final = "latest"
CONFIG_FILE: Final = "config.yaml"
ENV_FILE: Final = "env.json"
STATUS_FILE: Final = "status.json"
_STEP_FILE: Final = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_path(directory: Path, step: int) -> Path:
    """The file of the checkpoint of ``step`` in a ``checkpoints`` folder."""
    return directory / f"step_{step:08d}.pt"


def is_step_checkpoint_name(name: str) -> bool:
    """Whether ``name`` is a plain ``step_N.pt`` file name (no folder, nothing else)."""
    return _STEP_FILE.fullmatch(name) is not None


def list_step_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """Complete step checkpoints in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        match = _STEP_FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry))
    return sorted(found)


@dataclass(frozen=True)
class RunLayout:
    """Paths inside one run's directory."""

    path: Path

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def env_file(self) -> Path:
        return self.path / ENV_FILE

    @property
    def status_file(self) -> Path:
        return self.path / STATUS_FILE

    def has_checkpoints(self) -> bool:
        """Whether the directory holds a run already (a fresh run must not write into it)."""
        return (self.checkpoints / LATEST_POINTER).exists() or bool(list_step_checkpoints(self.checkpoints))


def holds_a_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` has checkpoints already (a fresh run must not write into it)."""
    return RunLayout(run_dir).has_checkpoints()


def run_dir_of(location: Path) -> Path:
    """The run directory of a run directory, its ``checkpoints`` folder, or one of its checkpoint files."""
    if location.is_file():
        parent = location.parent
        return parent.parent if parent.name == CHECKPOINTS_DIR else parent
    return location.parent if location.name == CHECKPOINTS_DIR else location


def default_run_dir(name: str, root: Path = Path("runs")) -> Path:
    """``runs/NAME-YYYYmmdd-HHMMSS`` (with a numeric suffix if that exists already)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "run"
    candidate = root / f"{safe}-{stamp}"
    suffix = 1
    while candidate.exists():
        candidate = root / f"{safe}-{stamp}-{suffix}"
        suffix += 1
    return candidate
