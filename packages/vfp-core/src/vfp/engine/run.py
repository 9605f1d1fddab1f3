"""The run directory's files: the resolved config and the environment record.

The layout (which file lives where) is :mod:`vfp.run_layout`, shared with the torch-free command line.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
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
from vfp.engine.checkpoint import _write_bytes, atomic_write
from vfp.engine.options import RunDirectoryError
from vfp.run_layout import RunLayout

__all__ = ["ConfigEditedError", "RunDirectory", "collect_environment", "config_file_edits", "git_revision"]

DIGEST_PREFIX = "# sha256 of the lines below: "
"""The second header line of ``config.yaml``: tells an edited file from the one the run wrote."""


class ConfigEditedError(RunDirectoryError):
    """A run's ``config.yaml`` was edited by hand: resuming would silently ignore and overwrite the edits."""


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class RunDirectory(RunLayout):
    """A run's directory (paths from :class:`~vfp.run_layout.RunLayout`), and writing its records."""

    def write_config(self, resolved: Mapping[str, Any], source: str | None) -> None:
        header = f"# resolved config of this run (from {source})\n" if source else "# resolved config of this run\n"
        body = yaml.safe_dump(dict(resolved), sort_keys=False)
        text = f"{header}{DIGEST_PREFIX}{_digest(body)} (`vfp train --resume` refuses a hand-edited copy)\n{body}"
        atomic_write(self.config_file, lambda handle: _write_bytes(handle, text.encode("utf-8")))

    def write_status(self, status: str, *, step: int, max_steps: int, message: str = "") -> None:
        """Write ``status.json`` (atomically): ``running`` at start and at each checkpoint, then how it ended.

        A run killed with SIGKILL stays ``running`` here; readers compare ``pid`` and ``updated``.
        """
        record = {
            "status": status,
            "step": step,
            "max_steps": max_steps,
            "message": message,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "updated": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
        text = json.dumps(record, indent=2) + "\n"
        atomic_write(self.status_file, lambda handle: _write_bytes(handle, text.encode("utf-8")))

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


def config_file_edits(config_file: Path, saved: Mapping[str, Any], resumed: Mapping[str, Any]) -> list[str]:
    """What was changed by hand in a run's ``config.yaml`` and is not applied (empty when nothing is).

    The file's second line holds the digest of what the run wrote; a file without it (older runs) or
    a missing file counts as unedited. A hand edit that the resumed config (``resumed``: the
    checkpoint's config ``saved`` with this session's overrides) applies too is accepted. Each line
    names a key whose edit would be lost: ``key: saved (saved) -> edited (config.yaml)``.
    """
    try:
        text = config_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return [] if not config_file.exists() else [f"{config_file} cannot be read as UTF-8 text"]
    lines = text.split("\n", 2)
    if len(lines) < 3 or not lines[1].startswith(DIGEST_PREFIX):
        return []
    body = lines[2]
    if lines[1].removeprefix(DIGEST_PREFIX).split(" ", 1)[0] == _digest(body):
        return []
    try:
        edited = yaml.safe_load(body)
    except yaml.YAMLError as exc:
        return [f"{config_file} is no longer valid YAML ({str(exc).splitlines()[0]})"]
    applied = _differences(dict(resumed), edited, "")
    return [line for path, line in _differences(dict(saved), edited, "").items() if path in applied]


def _differences(saved: Any, edited: Any, prefix: str) -> dict[str, str]:
    """Key path → ``path: saved (saved) -> edited (config.yaml)`` for every leaf that differs."""
    if isinstance(saved, dict) and isinstance(edited, dict):
        found: dict[str, str] = {}
        for key in [*saved, *(k for k in edited if k not in saved)]:
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in edited:
                found[path] = f"{path}: removed (saved: {saved[key]!r})"
            elif key not in saved:
                found[path] = f"{path}: added ({edited[key]!r})"
            else:
                found.update(_differences(saved[key], edited[key], path))
        return found
    if saved != edited:
        where = prefix or "(the whole file)"
        return {where: f"{where}: {saved!r} (saved) -> {edited!r} (config.yaml)"}
    return {}


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
