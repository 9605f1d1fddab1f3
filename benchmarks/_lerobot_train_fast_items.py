"""``lerobot-train`` with ``LeRobotDataset.__getitem__`` served from memory (low-dimensional datasets only).

LeRobot 0.4.4 reads every training item through the Hugging Face ``datasets`` table: one row, then for
each key with delta timestamps ``hf_dataset[key][indices]`` (about 160 items/s on this machine, 1.6 s of a
batch of 256, more than the diffusion UNet's update). This launcher replaces that one method with the same
computation on torch tensors read from the table once: the same keys, values, padding flags
(``<key>_is_pad``: indices outside the episode are clamped to its first/last frame and flagged), dtypes and
``task`` string. :func:`check_items` compares the two on random items before training starts and stops
if any differ. Everything else is LeRobot's own ``lerobot-train``: its config parsing, sampler, policy,
processors, optimizer, scheduler and checkpoints.

    python benchmarks/_lerobot_train_fast_items.py --policy.type=diffusion ...   # lerobot-train's arguments
"""

from __future__ import annotations

import random
import sys
from typing import Any

CHECKED_ITEMS = 64


def _columns(dataset: Any) -> dict[str, Any]:
    """Every non-video column of the dataset's table as one torch tensor (rows in table order)."""
    import torch

    dataset._ensure_hf_dataset_loaded()
    table = dataset.hf_dataset.with_format(None)
    columns: dict[str, Any] = {}
    for key in table.column_names:
        if key in dataset.meta.video_keys or key in dataset.meta.camera_keys:
            raise SystemExit(f"{__file__}: only low-dimensional datasets are supported ({key!r} is an image)")
        values = table[key]
        columns[key] = torch.as_tensor(values)
    return columns


def fast_getitem(self: Any, idx: int) -> dict[str, Any]:
    """``LeRobotDataset.__getitem__`` for a dataset without images or videos, from in-memory tensors."""
    import torch

    columns = self.__dict__.get("_vfp_columns")
    if columns is None:
        columns = self._vfp_columns = _columns(self)
    item = {key: column[idx] for key, column in columns.items()}
    if self.delta_indices is not None:
        abs_idx = int(item["index"])
        ep = self.meta.episodes[int(item["episode_index"])]
        start, end = ep["dataset_from_index"], ep["dataset_to_index"]
        for key, deltas in self.delta_indices.items():
            absolute = [max(start, min(end - 1, abs_idx + d)) for d in deltas]
            rows = (
                absolute
                if self._absolute_to_relative_idx is None
                else [self._absolute_to_relative_idx[i] for i in absolute]
            )
            item[f"{key}_is_pad"] = torch.BoolTensor([(abs_idx + d < start) | (abs_idx + d >= end) for d in deltas])
            item[key] = columns[key][rows]
    item["task"] = self.meta.tasks.iloc[int(item["task_index"])].name
    return item


def check_items(dataset: Any, original: Any, count: int = CHECKED_ITEMS, seed: int = 0) -> None:
    """The fast items equal LeRobot's own on ``count`` random indices (and the first and last), or exit."""
    import torch

    rng = random.Random(seed)
    indices = {0, len(dataset) - 1, *(rng.randrange(len(dataset)) for _ in range(count))}
    for idx in sorted(indices):
        expected, got = original(dataset, idx), fast_getitem(dataset, idx)
        if set(expected) != set(got):
            raise SystemExit(f"item {idx}: keys differ: {sorted(expected)} vs {sorted(got)}")
        for key, value in expected.items():
            other = got[key]
            if isinstance(value, torch.Tensor):
                same = value.dtype == other.dtype and value.shape == other.shape and torch.equal(value, other)
            else:
                same = value == other
            if not same:
                raise SystemExit(f"item {idx}: {key!r} differs from LeRobotDataset.__getitem__'s")


def main() -> None:
    from lerobot.datasets import lerobot_dataset
    from lerobot.scripts import lerobot_train

    original = lerobot_dataset.LeRobotDataset.__getitem__

    def getitem(self: Any, idx: int) -> dict[str, Any]:
        if not self.__dict__.get("_vfp_checked"):
            self._vfp_checked = True
            check_items(self, original)
            print(f"fast items: {CHECKED_ITEMS}+2 random items equal LeRobotDataset.__getitem__'s", flush=True)
        return fast_getitem(self, idx)

    lerobot_dataset.LeRobotDataset.__getitem__ = getitem  # type: ignore[method-assign]
    sys.argv[0] = "lerobot-train"
    lerobot_train.main()


if __name__ == "__main__":
    main()
