"""Checkpoint files: atomic writes, a ``latest`` pointer, keep-last-N, and safe loading.

A checkpoint is a ``torch.save`` of a dict holding only tensors and primitive containers, read back
with ``torch.load(weights_only=True)``: loading a checkpoint never unpickles arbitrary objects.
Files are written to a temporary name, fsynced and renamed, so a crash (even ``kill -9``) during a
write leaves every earlier checkpoint, and the ``latest`` pointer, intact.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
import torch

__all__ = [
    "CHECKPOINTS_DIR",
    "CHECKPOINT_FORMAT",
    "LATEST_POINTER",
    "CheckpointError",
    "atomic_write",
    "capture_rng_state",
    "checkpoint_path",
    "find_checkpoint",
    "list_step_checkpoints",
    "load_checkpoint",
    "load_component_weights",
    "policy_weights",
    "prune_checkpoints",
    "restore_rng_state",
    "save_checkpoint",
]

CHECKPOINT_FORMAT: Final = "vfp-checkpoint/1"
CHECKPOINTS_DIR: Final = "checkpoints"
LATEST_POINTER: Final = "latest"
TEMP_MARKER: Final = ".tmp-"
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be found, read or used."""


def checkpoint_path(directory: Path, step: int) -> Path:
    return directory / f"step_{step:08d}.pt"


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through a temporary file in the same folder: write, fsync, rename, fsync folder."""
    temp = path.with_name(f".{path.name}{TEMP_MARKER}{os.getpid()}")
    try:
        with temp.open("wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _write_bytes(handle: IO[bytes], data: bytes) -> None:
    handle.write(data)


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


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete temporary files left by an interrupted write (a process killed mid-write)."""
    stale = [p for p in directory.glob(f".*{TEMP_MARKER}*")] if directory.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def prune_checkpoints(directory: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` step checkpoints; never the one ``latest`` names."""
    pointed = _read_pointer(directory)
    removed = []
    for _, path in list_step_checkpoints(directory)[:-keep_last]:
        if path.name != pointed:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def save_checkpoint(directory: Path, step: int, payload: Mapping[str, Any], keep_last: int) -> Path:
    """Write ``payload`` as the checkpoint of ``step``, point ``latest`` at it, prune older ones."""
    directory.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(directory, step)
    atomic_write(path, lambda handle: torch.save(dict(payload), handle))
    atomic_write(directory / LATEST_POINTER, lambda handle: _write_bytes(handle, path.name.encode() + b"\n"))
    prune_checkpoints(directory, keep_last)
    return path


def _read_pointer(directory: Path) -> str | None:
    pointer = directory / LATEST_POINTER
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return name or None


def find_checkpoint(location: Path) -> Path:
    """The checkpoint a path designates: a checkpoint file, or a run directory's latest checkpoint."""
    location = location.expanduser()
    if location.is_file():
        return location
    if not location.is_dir():
        raise CheckpointError(f"{location} does not exist (expected a run directory or a checkpoint file)")
    directory = location if location.name == CHECKPOINTS_DIR else location / CHECKPOINTS_DIR
    name = _read_pointer(directory)
    if name is not None and (directory / name).is_file():
        return directory / name
    steps = list_step_checkpoints(directory)
    if not steps:
        raise CheckpointError(f"no checkpoint in {location} (looked for {directory}/step_*.pt)")
    return steps[-1][1]


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``) and check that it is a vfp checkpoint."""
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a vfp checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    return payload


def load_latest_checkpoint(location: Path, map_location: str | torch.device = "cpu") -> tuple[Path, dict[str, Any]]:
    """Load the newest readable checkpoint of a run (or the given file).

    When the newest file cannot be read, the previous ones are tried, newest first, with a warning.
    """
    first = find_checkpoint(location)
    try:
        return first, load_checkpoint(first, map_location)
    except CheckpointError as exc:
        if location.is_file():
            raise
        failure = exc
    for _, path in reversed(list_step_checkpoints(first.parent)):
        if path == first:
            continue
        try:
            payload = load_checkpoint(path, map_location)
        except CheckpointError:
            continue
        warnings.warn(f"{failure}; using the previous checkpoint {path}", stacklevel=2)
        return path, payload
    raise failure


def policy_weights(payload: Mapping[str, Any]) -> dict[str, dict[str, torch.Tensor]]:
    """The weights a checkpoint's policy uses: the EMA weights when the run kept an EMA."""
    ema = payload.get("ema")
    weights: dict[str, dict[str, torch.Tensor]] = ema if ema else payload["models"]
    return weights


def load_component_weights(location: Path, component: str) -> dict[str, torch.Tensor]:
    """The policy weights of one model component from a checkpoint file or run directory."""
    payload = load_checkpoint(find_checkpoint(location))
    weights = policy_weights(payload)
    if component not in weights:
        raise KeyError(f"the checkpoint has no model component {component!r} (it has: {', '.join(weights)})")
    return weights[component]


# random number generators -------------------------------------------------------------------------
def capture_rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's (CPU and CUDA) generators, as tensors and numbers."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    assert isinstance(np_state, dict)
    state: dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` captured."""
    python = state["python"]
    random.setstate((python["version"], tuple(int(x) for x in python["state"].tolist()), python["gauss"]))
    numpy = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": numpy["key"].numpy().astype(np.uint32), "pos": numpy["pos"]},
            "has_gauss": numpy["has_gauss"],
            "gauss": numpy["gauss"],
        }
    )
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda][: torch.cuda.device_count()])
