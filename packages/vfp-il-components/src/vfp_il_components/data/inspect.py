"""Summaries of datasets for ``vfp data inspect``: episodes, lengths, keys, shapes, dtypes and statistics.

HDF5 files (robomimic layout) are read with h5py. LeRobot datasets (a folder with ``meta/info.json``)
are read from their metadata files, so inspecting one does not need the lerobot library; episode
lengths come from ``meta/episodes/*.parquet`` when pyarrow is installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vfp_il_components.data.errors import DataError
from vfp_il_components.data.hdf5 import demo_sort_key, open_hdf5

__all__ = ["inspect_dataset"]

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
    with open_hdf5(path) as file:
        if "data" not in file or not isinstance(file["data"], h5py.Group):
            raise DataError("no 'data' group (expected data/<demo>/obs/<key>, data/<demo>/actions)", file=path)
        names = sorted(file["data"].keys(), key=demo_sort_key)
        lengths: dict[str, int] = {}
        keys: dict[str, h5py.Dataset] = {}
        missing: dict[str, int] = {}
        for name in names:
            demo = file["data"][name]
            found: list[str] = []
            demo.visit(
                lambda key, demo=demo, found=found: found.append(key) if isinstance(demo[key], h5py.Dataset) else None
            )
            for key in found:
                keys.setdefault(key, demo[key])
            for key in keys:
                if key not in found:
                    missing[key] = missing.get(key, 0) + 1
            if "actions" in demo:
                lengths[name] = int(demo["actions"].shape[0])
            elif "num_samples" in demo.attrs:
                lengths[name] = int(demo.attrs["num_samples"])
            else:
                lengths[name] = int(demo[found[0]].shape[0]) if found else 0
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
            if np.issubdtype(first.dtype, np.number) and present:
                if _is_image(first):
                    feature["stats"] = _image_stats(file, present, key, lengths)
                else:
                    values = np.concatenate([np.asarray(file["data"][n][key][()]) for n in present], axis=0)
                    feature["stats"] = _stats(values)
                    feature["non_finite"] = int((~np.isfinite(values.astype(np.float64))).sum())
            features.append(feature)
        filters = {}
        if "mask" in file:
            filters = {key: int(np.asarray(node[()]).size) for key, node in file["mask"].items()}
        task = file.attrs.get("vfp_task")
        fps = file.attrs.get("vfp_fps")
    return {
        "format": "hdf5",
        "path": str(path),
        "episodes": len(names),
        "frames": int(sum(lengths.values())),
        **_length_summary(lengths),
        "features": features,
        "filters": filters,
        "task": None if task is None else str(task),
        "fps": None if fps is None else int(fps),
    }


def _image_stats(file: h5py.File, names: list[str], key: str, lengths: dict[str, int]) -> dict[str, Any]:
    total = sum(lengths[n] for n in names)
    stride = max(1, -(-total // MAX_IMAGE_FRAMES))
    frames = [np.asarray(file["data"][name][key][::stride]) for name in names]
    values = np.concatenate(frames, axis=0).astype(np.float32) / 255.0
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
    info = json.loads((root / "meta" / "info.json").read_text())
    stats_file = root / "meta" / "stats.json"
    stats = json.loads(stats_file.read_text()) if stats_file.is_file() else {}
    lengths, note = _lerobot_episode_lengths(root)
    features = []
    for key, feature in info.get("features", {}).items():
        entry: dict[str, Any] = {
            "key": key,
            "shape": list(feature.get("shape", [])),
            "dtype": feature.get("dtype"),
            "kind": "image" if feature.get("dtype") in ("image", "video") else "low_dim",
        }
        if key in stats:
            entry["stats"] = {
                s: _rounded(np.asarray(stats[key][s])) for s in ("mean", "std", "min", "max") if s in stats[key]
            }
        features.append(entry)
    summary = {
        "format": "lerobot",
        "path": str(root),
        "codebase_version": info.get("codebase_version"),
        "episodes": int(info.get("total_episodes", len(lengths))),
        "frames": int(info.get("total_frames", sum(lengths.values()))),
        **_length_summary(lengths),
        "features": features,
        "fps": info.get("fps"),
        "task": info.get("vfp_task"),
    }
    if note:
        summary["note"] = note
    return summary


def _lerobot_episode_lengths(root: Path) -> tuple[dict[str, int], str | None]:
    files = sorted((root / "meta" / "episodes").glob("*/*.parquet"))
    if not files:
        return {}, "no meta/episodes/*.parquet files (episode lengths unknown)"
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return {}, "install pyarrow to list episode lengths"
    lengths: dict[str, int] = {}
    for file in files:
        table = pq.read_table(file, columns=["episode_index", "length"])
        for index, length in zip(
            table.column("episode_index").to_pylist(), table.column("length").to_pylist(), strict=True
        ):
            lengths[f"episode_{index}"] = int(length)
    return dict(sorted(lengths.items(), key=lambda item: demo_sort_key(item[0]))), None
