"""Summaries of datasets for ``vfp data inspect``: episodes, lengths, keys, shapes, dtypes and statistics.

HDF5 files (robomimic layout) are read with h5py. LeRobot datasets (a folder with ``meta/info.json``)
are read from their metadata files, so inspecting one does not need the lerobot library; episode
lengths come from ``meta/episodes/*.parquet`` when pyarrow is installed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vfp_il_components.data.errors import DataError, where
from vfp_il_components.data.hdf5_checks import (
    NUMBER_KINDS,
    action_length,
    dataset_keys,
    demo_group,
    demo_names,
    demo_sort_key,
    hdf5_errors,
    integer_attribute,
    open_hdf5,
    read_task_attributes,
)

__all__ = ["inspect_dataset", "read_json_object"]

ACTIONS = "actions"
MAX_IMAGE_FRAMES = 2000
"""Image statistics are computed over at most this many frames, evenly spaced."""


def inspect_dataset(path: str | Path) -> dict[str, Any]:
    """A JSON-serializable summary of the HDF5 file or LeRobot dataset folder at ``path``."""
    path = Path(path).expanduser()
    if path.is_dir():
        if not (path / "meta" / "info.json").is_file():
            raise DataError("is a folder without meta/info.json; expected a LeRobot dataset or an HDF5 file", file=path)
        return _inspect_lerobot(path)
    return _inspect_hdf5(path)


def _rounded(values: np.ndarray) -> list[float] | float:
    array = np.round(np.asarray(values, dtype=np.float64), 6)
    return float(array) if array.ndim == 0 else [float(v) for v in array.reshape(-1)]


def _stats(values: np.ndarray, per_channel_axis: int | None = None) -> dict[str, Any]:
    data = values.astype(np.float64)
    if per_channel_axis is None:  # per dimension of a low-dimensional feature
        data = data.reshape(len(data), -1)
        axes: tuple[int, ...] = (0,)
    else:  # images: one value per channel
        data = np.moveaxis(data, per_channel_axis, -1).reshape(-1, data.shape[per_channel_axis])
        axes = (0,)
    return {
        "mean": _rounded(data.mean(axis=axes)),
        "std": _rounded(data.std(axis=axes)),
        "min": _rounded(data.min(axis=axes)),
        "max": _rounded(data.max(axis=axes)),
    }


def _is_image(dataset: h5py.Dataset) -> bool:
    return dataset.dtype == np.uint8 and dataset.ndim == 4 and dataset.shape[-1] in (1, 3, 4)


def _inspect_hdf5(path: Path) -> dict[str, Any]:
    with open_hdf5(path) as file, hdf5_errors(path):
        names = demo_names(file, path)
        lengths: dict[str, int] = {}
        keys: dict[str, h5py.Dataset] = {}
        first_in: dict[str, str] = {}
        missing: dict[str, int] = {}
        mixed: set[str] = set()
        notes: list[str] = []
        for name in names:
            demo = demo_group(file, path, name)
            with hdf5_errors(path, name):
                found = dataset_keys(demo)
            for key in found:
                dataset = demo[key]
                if dataset.ndim == 0:
                    raise DataError("expected per-step values (T, ...), got a scalar", file=path, episode=name, key=key)
                if key not in keys:
                    keys[key], first_in[key] = dataset, name
                elif dataset.dtype.kind != keys[key].dtype.kind and key not in mixed:
                    mixed.add(key)
                    notes.append(
                        f"{where(path, name, key)}: holds {dataset.dtype} values, but {keys[key].dtype} in "
                        f"{first_in[key]} (no statistics)"
                    )
                elif dataset.shape[1:] != keys[key].shape[1:]:
                    raise DataError(
                        f"per-step shape {dataset.shape[1:]} differs from {keys[key].shape[1:]} in {first_in[key]}",
                        file=path, episode=name, key=key,
                    )  # fmt: skip
            for key in keys:
                if key not in found:
                    missing[key] = missing.get(key, 0) + 1
            num_samples = integer_attribute(demo.attrs, "num_samples", path, name)
            if ACTIONS in demo:
                if ACTIONS not in found:
                    raise DataError("expected a dataset, found a group", file=path, episode=name, key=ACTIONS)
                lengths[name] = action_length(demo[ACTIONS], path, name, ACTIONS)
                if num_samples is not None and num_samples != lengths[name]:
                    notes.append(
                        f"{where(path, name, ACTIONS)}: num_samples attribute says {num_samples}, "
                        f"actions have {lengths[name]} steps"
                    )
            elif num_samples is not None:
                lengths[name] = num_samples
            else:
                lengths[name] = int(demo[found[0]].shape[0]) if found else 0
        if names and not any(lengths.values()):
            raise DataError("every demo is empty (0 steps)", file=path, episode=names[0], key=ACTIONS)
        empty = [name for name, length in lengths.items() if length == 0]
        if empty:
            notes.append(f"{path}: {len(empty)} empty episode(s) (0 steps), first {empty[0]}")
        features = []
        for key, first in sorted(keys.items()):
            present = [name for name in names if key in file["data"][name]]
            feature: dict[str, Any] = {
                "key": key,
                "shape": list(first.shape[1:]),
                "dtype": str(first.dtype),
                "kind": "image" if _is_image(first) else "low_dim",
            }
            if key in missing:
                feature["missing_in_episodes"] = missing[key]
            if first.dtype.kind in NUMBER_KINDS and present and key not in mixed:
                if _is_image(first):
                    feature["stats"] = _image_stats(file, path, present, key, lengths)
                else:
                    values = _read_all(file, path, present, key)
                    if len(values):
                        feature["stats"] = _stats(values)
                        feature["non_finite"] = int((~np.isfinite(values.astype(np.float64))).sum())
                        policy_input = key == ACTIONS or key.startswith("obs/")  # not rewards, dones...
                        if policy_input and len(values) > 1 and bool((values == values[:1]).all()):
                            notes.append(f"{where(path, key=key)}: constant over all {len(values)} steps")
            elif first.dtype.kind not in NUMBER_KINDS + "b":
                notes.append(f"{where(path, key=key)}: holds {first.dtype} values, not numbers (no statistics)")
            features.append(feature)
        filters = {}
        if "mask" in file and isinstance(file["mask"], h5py.Group):
            filters = {key: int(node.size) for key, node in file["mask"].items() if isinstance(node, h5py.Dataset)}
        task, _, fps = read_task_attributes(file, path)
    summary = {
        "format": "hdf5",
        "path": str(path),
        "episodes": len(names),
        "frames": int(sum(lengths.values())),
        **_length_summary(lengths),
        "features": features,
        "filters": filters,
        "task": task,
        "fps": fps,
    }
    if notes:
        summary["warnings"] = notes
    return summary


def _read_all(file: h5py.File, path: Path, names: list[str], key: str) -> np.ndarray:
    arrays = []
    for name in names:
        with hdf5_errors(path, name, key):
            arrays.append(np.asarray(file["data"][name][key][()]))
    return np.concatenate(arrays, axis=0)


def _image_stats(file: h5py.File, path: Path, names: list[str], key: str, lengths: dict[str, int]) -> dict[str, Any]:
    total = sum(lengths[n] for n in names)
    stride = max(1, -(-total // MAX_IMAGE_FRAMES))
    frames = []
    for name in names:
        with hdf5_errors(path, name, key):
            frames.append(np.asarray(file["data"][name][key][::stride]))
    values = np.concatenate(frames, axis=0).astype(np.float32) / 255.0
    if not len(values):
        return {"frames_used": 0}
    stats = _stats(values, per_channel_axis=-1)
    stats["frames_used"] = len(values)
    stats["scale"] = "[0, 1]"
    return stats


def _length_summary(lengths: dict[str, int]) -> dict[str, Any]:
    values = list(lengths.values())
    return {
        "length_min": min(values) if values else None,
        "length_max": max(values) if values else None,
        "length_mean": round(float(np.mean(values)), 3) if values else None,
        "episode_lengths": lengths,
    }


def _inspect_lerobot(root: Path) -> dict[str, Any]:
    info = read_json_object(root / "meta" / "info.json")
    stats_file = root / "meta" / "stats.json"
    stats = read_json_object(stats_file) if stats_file.is_file() else {}
    lengths, note = _lerobot_episode_lengths(root)
    features = []
    declared = info.get("features", {})
    if not isinstance(declared, dict) or not all(isinstance(f, dict) for f in declared.values()):
        raise DataError("'features' must map each feature to {dtype, shape}", file=root / "meta" / "info.json")
    for key, feature in declared.items():
        entry: dict[str, Any] = {
            "key": key,
            "shape": list(feature.get("shape", [])),
            "dtype": feature.get("dtype"),
            "kind": "image" if feature.get("dtype") in ("image", "video") else "low_dim",
        }
        if isinstance(stats.get(key), dict):
            with _bad_json(stats_file, key):
                entry["stats"] = {
                    s: _rounded(np.asarray(stats[key][s])) for s in ("mean", "std", "min", "max") if s in stats[key]
                }
        features.append(entry)
    with _bad_json(root / "meta" / "info.json"):
        episodes = int(info.get("total_episodes", len(lengths)))
        frames = int(info.get("total_frames", sum(lengths.values())))
    summary = {
        "format": "lerobot",
        "path": str(root),
        "codebase_version": info.get("codebase_version"),
        "episodes": episodes,
        "frames": frames,
        **_length_summary(lengths),
        "features": features,
        "fps": info.get("fps"),
        "task": info.get("vfp_task"),
    }
    if note:
        summary["note"] = note
    return summary


def read_json_object(file: Path) -> dict[str, Any]:
    """A JSON object from ``file``, or a ``DataError`` naming it (not UTF-8, not JSON, not an object)."""
    try:
        value = json.loads(file.read_bytes().decode())
    except UnicodeDecodeError:
        raise DataError("is not UTF-8 text", file=file) from None
    except (ValueError, RecursionError) as exc:
        raise DataError(f"is not valid JSON: {exc}", file=file) from None
    except OSError as exc:
        raise DataError(f"cannot be read: {exc.strerror or exc}", file=file) from None
    if not isinstance(value, dict):
        raise DataError(f"expected a JSON object, got {type(value).__name__}", file=file)
    return value


@contextmanager
def _bad_json(file: Path, key: str | None = None) -> Iterator[None]:
    try:
        yield
    except (TypeError, ValueError) as exc:
        raise DataError(f"unexpected value: {exc}", file=file, key=key) from None


def _lerobot_episode_lengths(root: Path) -> tuple[dict[str, int], str | None]:
    files = sorted(f for f in (root / "meta" / "episodes").glob("*/*.parquet") if f.is_file())
    if not files:
        return {}, "no meta/episodes/*.parquet files (episode lengths unknown)"
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return {}, "install pyarrow to list episode lengths"
    lengths: dict[str, int] = {}
    for file in files:
        try:
            table = pq.read_table(file, columns=["episode_index", "length"])
        except Exception as exc:  # pyarrow's errors (ArrowInvalid, OSError, KeyError) share no useful base
            raise DataError(f"cannot be read as an episodes table: {exc}", file=file) from None
        for index, length in zip(
            table.column("episode_index").to_pylist(), table.column("length").to_pylist(), strict=True
        ):
            lengths[f"episode_{index}"] = int(length)
    return dict(sorted(lengths.items(), key=lambda item: demo_sort_key(item[0]))), None
