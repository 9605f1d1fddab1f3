"""Checks of HDF5 files shared by the ``hdf5`` dataloader and ``vfp data inspect`` (h5py and numpy, no torch).

Each turns a malformed or damaged file into a ``DataError`` naming the file, the episode and the key: a path
that is not a regular file, a demo that is not a group, actions that are not numbers of shape (T, A), attributes
of the wrong type, and whatever h5py raises on a damaged header or chunk.
"""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vfp_il_components.data.errors import DataError
from vfp_il_components.data.specs import DemoGenerationConfig
from vfp_il_components.tasks import TASK_NAMES

__all__ = [
    "NUMBER_KINDS",
    "action_length",
    "check_numbers",
    "checked_task_options",
    "dataset_keys",
    "demo_group",
    "demo_names",
    "demo_sort_key",
    "hdf5_errors",
    "integer_attribute",
    "open_hdf5",
    "read_task_attributes",
]


def demo_sort_key(name: str) -> tuple[int, int | str]:
    """robomimic's order: ``demo_2`` before ``demo_10``; other names after, alphabetically."""
    match = re.fullmatch(r"\D*(\d+)", name)
    return (0, int(match.group(1))) if match else (1, name)


def open_hdf5(path: Path) -> h5py.File:
    """Open ``path`` read-only with a clear error when it is missing, not a regular file, or not HDF5.

    A FIFO, socket or device is refused before it is opened (opening a FIFO blocks until a writer comes).
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise DataError("file not found (expected an HDF5 file in the robomimic layout)", file=path) from None
    except OSError as exc:
        raise DataError(f"cannot be read: {exc.strerror or exc}", file=path) from None
    if stat.S_ISDIR(mode):
        raise DataError("is a directory; expected an HDF5 file", file=path)
    if not stat.S_ISREG(mode):
        raise DataError(f"is not a regular file ({_file_kind(mode)}); expected an HDF5 file", file=path)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"cannot be opened as HDF5: {exc}", file=path) from None
    except Exception as exc:  # h5py raises more than OSError on some damaged superblocks
        raise DataError(f"cannot be opened as HDF5 (damaged?): {type(exc).__name__}: {exc}", file=path) from None


def _file_kind(mode: int) -> str:
    kinds = {stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a character device"}
    kinds[stat.S_ISBLK] = "a block device"
    return next((name for test, name in kinds.items() if test(mode)), "not a regular file")


@contextmanager
def hdf5_errors(path: Path, episode: str | None = None, key: str | None = None) -> Iterator[None]:
    """Turn what h5py and numpy raise on a damaged file (a zeroed chunk, a broken header) into a ``DataError``."""
    try:
        yield
    except DataError:
        raise
    except MemoryError:
        raise DataError("too large to read into memory (or a damaged header claims so)", file=path,
                        episode=episode, key=key) from None  # fmt: skip
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise DataError(
            f"cannot be read; the file may be damaged ({type(exc).__name__}: {exc})",
            file=path,
            episode=episode,
            key=key,
        ) from None


NUMBER_KINDS = "iuf"
"""numpy dtype kinds accepted as numbers: signed and unsigned integers, floats (not bool, complex or text)."""


def check_numbers(dataset: h5py.Dataset, path: Path, episode: str, key: str) -> None:
    """Refuse a dataset that does not hold real numbers (text, even numeric text, booleans, complex, records)."""
    dtype = dataset.dtype
    if dtype.kind in NUMBER_KINDS:
        return
    if dtype.kind == "b":
        found = "booleans"
    elif dtype.kind == "c":
        found = f"complex numbers ({dtype})"
    elif dtype.kind in "SUO" or h5py.check_string_dtype(dtype) is not None:
        found = "text (numbers stored as strings are not converted: store them as numbers)"
    else:
        found = f"dtype {dtype}"
    raise DataError(f"expected integer or floating-point numbers, got {found}", file=path, episode=episode, key=key)


def integer_attribute(
    attrs: h5py.AttributeManager, name: str, path: Path, episode: str | None = None, minimum: int = 0
) -> int | None:
    """The integer attribute ``name`` (None when absent); text, booleans, arrays and fractions are refused."""
    if name not in attrs:
        return None
    with hdf5_errors(path, episode, name):
        value = attrs[name]
    array = np.asarray(value)
    if array.size == 1:
        array = array.reshape(())
    number: int | None = None
    integral = array.dtype.kind in "iu" or (
        array.dtype.kind == "f" and bool(np.isfinite(array).all()) and bool((np.mod(array, 1) == 0).all())
    )
    if array.ndim == 0 and integral:
        number = int(array)
    if number is None:
        shown = value.decode(errors="replace") if isinstance(value, bytes) else value
        raise DataError(f"attribute must be an integer, got {shown!r}", file=path, episode=episode, key=name)
    if number < minimum:
        raise DataError(f"attribute must be at least {minimum}, got {number}", file=path, episode=episode, key=name)
    return number


def _text_attribute(attrs: h5py.AttributeManager, name: str, path: Path) -> str | None:
    if name not in attrs:
        return None
    with hdf5_errors(path, key=name):
        value = attrs[name]
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    if isinstance(value, bytes | np.bytes_):
        try:
            value = bytes(value).decode()
        except UnicodeDecodeError:
            raise DataError("attribute is not UTF-8 text", file=path, key=name) from None
    if not isinstance(value, str):
        raise DataError(f"attribute must be text, got {value!r}", file=path, key=name)
    return value


def read_task_attributes(file: h5py.File, path: Path) -> tuple[str | None, dict[str, Any], int | None]:
    """The file's ``vfp_task``, ``vfp_task_options`` (JSON checked against the task) and ``vfp_fps``."""
    attrs = file.attrs
    task = _text_attribute(attrs, "vfp_task", path)
    if task is not None and task not in TASK_NAMES:
        raise DataError(f"unknown task {task!r}; available tasks: {', '.join(TASK_NAMES)}", file=path, key="vfp_task")
    text = _text_attribute(attrs, "vfp_task_options", path)
    options: Any = {}
    if text is not None:
        try:
            options = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise DataError(f"attribute is not valid JSON: {exc}", file=path, key="vfp_task_options") from None
        if not isinstance(options, dict):
            raise DataError(
                f"attribute must be a JSON object of task options, got {text[:80]!r}", file=path, key="vfp_task_options"
            )
    if task is not None:
        options = checked_task_options(task, options, path, "vfp_task_options")
    fps = integer_attribute(attrs, "vfp_fps", path, minimum=1)
    return task, options, fps


def checked_task_options(task: str, options: Any, path: Path, key: str) -> dict[str, Any]:
    """``options`` checked against the options of the known ``task`` (as ``data.generate.task_options`` are)."""
    from pydantic import ValidationError

    if not isinstance(options, dict):
        raise DataError(f"expected an object of task options, got {options!r:.80}", file=path, key=key)
    try:
        checked: dict[str, Any] = DemoGenerationConfig(task=task, task_options=options).task_options
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise DataError(f"invalid options of task {task!r}: {problems}", file=path, key=key) from None
    return checked


def dataset_keys(group: h5py.Group) -> list[str]:
    keys: list[str] = []
    group.visit(lambda name: keys.append(name) if isinstance(group[name], h5py.Dataset) else None)
    return keys


def demo_names(file: h5py.File, path: Path) -> list[str]:
    """The demos under ``data/`` in robomimic's order (an error when there is no ``data`` group)."""
    if "data" not in file or not isinstance(file["data"], h5py.Group):
        raise DataError("no 'data' group (expected data/<demo>/obs/<key> and data/<demo>/actions)", file=path)
    return sorted(file["data"].keys(), key=demo_sort_key)


def demo_group(file: h5py.File, path: Path, name: str) -> h5py.Group:
    """``data/<name>``, which must be a group."""
    with hdf5_errors(path, name):
        demo = file["data"][name]
    if not isinstance(demo, h5py.Group):
        raise DataError("expected a group per demo under data/, found a dataset", file=path, episode=name)
    return demo


def action_length(actions: h5py.Dataset, path: Path, episode: str, key: str) -> int:
    """Steps of an actions dataset, which must hold numbers of shape (T,) or (T, A)."""
    check_numbers(actions, path, episode, key)
    if actions.ndim == 0:
        raise DataError("expected actions of shape (T, A), got a scalar", file=path, episode=episode, key=key)
    if actions.ndim > 2:
        raise DataError(f"expected actions of shape (T, A), got {actions.shape}", file=path, episode=episode, key=key)
    return int(actions.shape[0])
