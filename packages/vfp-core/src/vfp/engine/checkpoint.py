"""Checkpoint files: atomic writes, a ``latest`` pointer, keep-last-N, and safe loading.

A checkpoint is a ``torch.save`` of a dict holding only tensors and primitive containers, read back
with ``torch.load(weights_only=True)``: loading a checkpoint never unpickles arbitrary objects.
Files are written to a temporary name, fsynced and renamed, so a crash (even ``kill -9``) during a
write leaves every earlier checkpoint, and the ``latest`` pointer, intact.

What the dict holds, and its format versions, is :mod:`vfp.engine.state` (:class:`CheckpointPayload`);
this module only moves files. :func:`read_checkpoint` returns the typed payload; :func:`load_checkpoint`
the file's dict as it is (the 1.0 API).
"""

from __future__ import annotations

import errno
import os
import pickle
import random
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
import torch

from vfp.engine.state import CHECKPOINT_FORMAT, READABLE_FORMATS, CheckpointError, CheckpointPayload, StateDicts
from vfp.run_layout import (
    CHECKPOINTS_DIR,
    LATEST_POINTER,
    checkpoint_path,
    is_step_checkpoint_name,
    list_step_checkpoints,
)

__all__ = [
    "CHECKPOINTS_DIR",
    "CHECKPOINT_FORMAT",
    "LATEST_POINTER",
    "READABLE_FORMATS",
    "CheckpointError",
    "CheckpointPayload",
    "CheckpointWriteError",
    "atomic_write",
    "capture_rng_state",
    "checkpoint_path",
    "find_checkpoint",
    "list_step_checkpoints",
    "load_checkpoint",
    "load_component_weights",
    "policy_weights",
    "prune_checkpoints",
    "read_checkpoint",
    "read_latest_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]

TEMP_MARKER: Final = ".tmp-"


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


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (full disk, read-only or missing folder); earlier ones are intact."""


class _RecordingWriter:
    """A file handle that remembers the ``OSError`` of a failed write.

    ``torch.save`` turns a failed write into ``RuntimeError: [enforce fail at inline_container.cc]``;
    the recorded error says what really happened (``ENOSPC``: the disk is full).
    """

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self._handle.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self._handle.flush()


def _save_tensors(content: Mapping[str, Any], handle: IO[bytes]) -> None:
    writer = _RecordingWriter(handle)
    try:
        torch.save(dict(content), writer)  # type: ignore[arg-type]  # a file-like with write()
    except RuntimeError:
        if writer.error is not None:
            raise writer.error from None
        raise


def describe_write_error(exc: OSError, what: Path) -> str:
    """One line for a failed write: a full disk, a read-only or unwritable folder, or the error itself."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk is full (no space left on device) while writing {what}"
    if exc.errno == errno.EROFS:
        return f"cannot write {what}: the file system is read-only"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"cannot write {what}: permission denied (is the run directory read-only?)"
    return f"cannot write {what}: {exc.strerror or exc}"


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete temporary files left by an interrupted write (a process killed mid-write)."""
    stale = [p for p in directory.glob(f".*{TEMP_MARKER}*")] if directory.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def prune_checkpoints(directory: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` step checkpoints; never the one ``latest`` names."""
    pointed = _read_pointer(directory, warn=False)
    removed = []
    for _, path in list_step_checkpoints(directory)[:-keep_last]:
        if path.name != pointed:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def save_checkpoint(directory: Path, step: int, payload: CheckpointPayload | Mapping[str, Any], keep_last: int) -> Path:
    """Write ``payload`` as the checkpoint of ``step``, point ``latest`` at it, prune older ones."""
    content = payload.to_dict() if isinstance(payload, CheckpointPayload) else dict(payload)
    path = checkpoint_path(directory, step)
    previous = _read_pointer(directory, warn=False)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda handle: _save_tensors(content, handle))
        atomic_write(directory / LATEST_POINTER, lambda handle: _write_bytes(handle, path.name.encode() + b"\n"))
    except OSError as exc:
        kept = (
            f"; the previous checkpoint {directory / previous} is intact"
            if previous is not None and (directory / previous).is_file()
            else ""
        )
        raise CheckpointWriteError(f"{describe_write_error(exc, path)}{kept}") from None
    prune_checkpoints(directory, keep_last)
    return path


def _read_pointer(directory: Path, *, warn: bool = True) -> str | None:
    """The checkpoint file name the ``latest`` pointer holds, or None (then the newest step file is used).

    A pointer must name a ``step_N.pt`` file of the same folder: one that is not text, or names a path
    (``../../other/step_1.pt``), is ignored with a warning, so no run loads another run's checkpoint.
    """
    pointer = directory / LATEST_POINTER
    try:
        raw = pointer.read_bytes()
    except OSError:
        return None
    try:
        name = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        name = None
    if name is not None and (not name or is_step_checkpoint_name(name)):
        return name or None
    if warn:
        warnings.warn(
            f"{pointer} does not name a checkpoint of this folder ({raw[:80]!r}); it is ignored and the "
            "newest step_*.pt file is used",
            stacklevel=3,
        )
    return None


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


def _load(path: Path, map_location: str | torch.device) -> tuple[dict[str, Any], CheckpointPayload]:
    """The file's dict and its typed reading; CheckpointError for anything unreadable or unknown."""
    try:
        raw = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, IndexError) as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(raw, dict) or raw.get("format") not in READABLE_FORMATS:
        found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise CheckpointError(
            f"{path} is not a vfp checkpoint this vfp-core reads (format {found!r}; "
            f"readable: {', '.join(READABLE_FORMATS)})"
        )
    return raw, CheckpointPayload.from_dict(raw, str(path))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``), check it, and return the file's dict as saved.

    Prefer :func:`read_checkpoint` (typed). A checkpoint of an older format comes back as it was written.
    """
    return _load(path, map_location)[0]


def read_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> CheckpointPayload:
    """Read a checkpoint safely (``weights_only=True``) into its typed payload (any readable format)."""
    return _load(path, map_location)[1]


def _latest(location: Path, map_location: str | torch.device) -> tuple[Path, dict[str, Any], CheckpointPayload]:
    first = find_checkpoint(location)
    try:
        return (first, *_load(first, map_location))
    except CheckpointError as exc:
        if location.is_file():
            raise
        failure = exc
    for _, path in reversed(list_step_checkpoints(first.parent)):
        if path == first:
            continue
        try:
            loaded = _load(path, map_location)
        except CheckpointError:
            continue
        warnings.warn(f"{failure}; using the previous checkpoint {path}", stacklevel=3)
        return (path, *loaded)
    raise failure


def read_latest_checkpoint(location: Path, map_location: str | torch.device = "cpu") -> tuple[Path, CheckpointPayload]:
    """The newest readable checkpoint of a run (or the given file), typed.

    When the newest file cannot be read, the previous ones are tried, newest first, with a warning.
    """
    path, _, payload = _latest(location, map_location)
    return path, payload


def load_latest_checkpoint(location: Path, map_location: str | torch.device = "cpu") -> tuple[Path, dict[str, Any]]:
    """:func:`read_latest_checkpoint`, returning the file's dict as saved (the 1.0 API)."""
    path, raw, _ = _latest(location, map_location)
    return path, raw


def policy_weights(payload: CheckpointPayload | Mapping[str, Any]) -> StateDicts:
    """The weights a checkpoint's policy uses: the EMA weights when the run kept an EMA."""
    if isinstance(payload, CheckpointPayload):
        return payload.policy_weights
    return CheckpointPayload.policy_weights_of(payload)


def load_component_weights(location: Path, component: str) -> dict[str, torch.Tensor]:
    """The policy weights of one model component from a checkpoint file or run directory."""
    weights = read_checkpoint(find_checkpoint(location)).policy_weights
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
