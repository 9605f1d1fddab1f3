"""The run directory: resolved config, environment record, metrics, TensorBoard events, checkpoints.

::

    RUN_DIR/
      config.yaml      the resolved config (defaults filled in); `vfp train --resume` reads the checkpoint's copy
      env.json         Python, torch, vfp plugin distributions, git revision, host, command line
      metrics.jsonl    one JSON object per logged step (the jsonl logger)
      tensorboard/     event files (the tensorboard logger)
      checkpoints/     step_XXXXXXXX.pt files and the `latest` pointer
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vfp._plugins import PluginHost
from vfp.engine.checkpoint import CHECKPOINTS_DIR, LATEST_POINTER, _write_bytes, atomic_write, list_step_checkpoints

__all__ = ["RunDirectory", "collect_environment", "git_revision"]

CONFIG_FILE = "config.yaml"
ENV_FILE = "env.json"


@dataclass(frozen=True)
class RunDirectory:
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

    def has_checkpoints(self) -> bool:
        return (self.checkpoints / LATEST_POINTER).exists() or bool(list_step_checkpoints(self.checkpoints))

    def write_config(self, resolved: Mapping[str, Any], source: str | None) -> None:
        header = f"# resolved config of this run (from {source})\n" if source else "# resolved config of this run\n"
        text = header + yaml.safe_dump(dict(resolved), sort_keys=False)
        atomic_write(self.config_file, lambda handle: _write_bytes(handle, text.encode("utf-8")))

    def write_environment(self, environment: Mapping[str, Any]) -> None:
        """Write ``env.json``; the records of earlier sessions of this run are kept under ``previous``."""
        previous: list[Any] = []
        if self.env_file.exists():
            try:
                old = json.loads(self.env_file.read_text(encoding="utf-8"))
                previous = [*old.pop("previous", []), old]
            except (OSError, ValueError):
                previous = []
        record = {**environment, "previous": previous}
        text = json.dumps(record, indent=2, default=str) + "\n"
        atomic_write(self.env_file, lambda handle: _write_bytes(handle, text.encode("utf-8")))


def git_revision(path: Path) -> dict[str, Any] | None:
    """The git commit (and whether the tree has changes) of the repository holding ``path``, if any."""
    folder = path if path.is_dir() else path.parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status), "root": git("rev-parse", "--show-toplevel")}


def collect_environment(
    host: PluginHost,
    *,
    config_source: Path | None,
    argv: Sequence[str],
    device: str,
    world_size: int,
) -> dict[str, Any]:
    """What ran this: interpreter, torch, every vfp plugin distribution, git revision, host, command."""
    import numpy
    import torch

    return {
        "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": list(argv),
        "cwd": os.getcwd(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "numpy": numpy.__version__,
        "device": device,
        "world_size": world_size,
        "plugins": [
            {
                "name": record.name,
                "distribution": record.distribution,
                "version": record.version,
                "status": record.status,
            }
            for record in host.records
        ],
        "config_source": str(config_source) if config_source else None,
        "git": git_revision(config_source) if config_source else None,
    }
