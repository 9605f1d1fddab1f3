"""Write demonstrations (e.g. of a synthetic task) as an HDF5 file in the robomimic layout."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vfp_il_components.data.module import split_by_ratio
from vfp_il_components.tasks.base import Episode, Task

__all__ = ["write_hdf5_dataset"]

CHECKSUMMED: dict[str, Any] = {"fletcher32": True}
"""Every dataset carries a Fletcher-32 checksum per chunk, so a damaged stretch of the file (a bad sector, a
partly zeroed chunk) is reported when it is read instead of being read as plausible numbers."""
COMPRESSED: dict[str, Any] = {**CHECKSUMMED, "compression": "gzip", "compression_opts": 1}
"""Low-dimensional datasets are also deflated (level 1): a chunk zeroed whole, checksum included (which Fletcher-32
alone accepts, the checksum of zeros being zero), fails to inflate. Images are only checksummed, so that
windows read from the file (``cache: none``) stay cheap."""


def write_hdf5_dataset(
    episodes: Sequence[Episode],
    path: str | Path,
    *,
    task: Task | None = None,
    val_ratio: float = 0.1,
    seed: int = 0,
) -> Path:
    """Write ``episodes`` to ``path`` (robomimic layout, plus ``vfp_task`` attributes), atomically.

    Each demo gets ``obs/<key>``, ``actions``, ``rewards`` and ``dones`` (1 at the last step; every dataset
    checksummed, see ``COMPRESSED``), the
    ``num_samples`` attribute and its ground-truth mode; ``mask/train`` and ``mask/valid`` split the demos
    by ``val_ratio``.
    """
    if not episodes:
        raise ValueError("no episodes to write")
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [f"demo_{i}" for i in range(len(episodes))]
    train, valid = split_by_ratio(names, val_ratio, seed)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with h5py.File(partial, "w") as file:
            data = file.create_group("data")
            for name, episode in zip(names, episodes, strict=True):
                demo = data.create_group(name)
                for key, values in episode.observations.items():
                    image = np.asarray(values).ndim == 4
                    demo.create_dataset(f"obs/{key}", data=values, **(CHECKSUMMED if image else COMPRESSED))
                demo.create_dataset("actions", data=np.asarray(episode.actions, dtype=np.float32), **COMPRESSED)
                done = np.zeros(len(episode), dtype=np.float32)
                done[-1] = 1.0
                demo.create_dataset("rewards", data=done, **COMPRESSED)
                demo.create_dataset("dones", data=done.astype(np.int64), **COMPRESSED)
                demo.attrs["num_samples"] = len(episode)
                demo.attrs["vfp_mode"] = episode.mode
                if task is not None:
                    demo.attrs["vfp_mode_name"] = task.mode_names[episode.mode]
            data.attrs["total"] = sum(len(e) for e in episodes)
            if task is not None:
                data.attrs["env_args"] = json.dumps(
                    {"env_name": task.name, "type": "vfp", "env_kwargs": task.options()}
                )
                file.attrs["vfp_task"] = task.name
                file.attrs["vfp_task_options"] = json.dumps(task.options())
                file.attrs["vfp_fps"] = task.fps
            file.create_dataset("mask/train", data=np.array(train, dtype="S"))
            file.create_dataset("mask/valid", data=np.array(valid, dtype="S"))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
