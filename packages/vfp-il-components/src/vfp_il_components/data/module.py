"""What the HDF5 and LeRobot data modules share: the ``DataModule`` surface, splits and statistics.

Batches leave the datasets with uint8 images. Two ways to consume them:

- ``collate_fn`` (what the engine calls today): collation, then ``prepare_batch`` on the CPU, so the
  loader yields float images in [0, 1], augmented for training batches;
- ``transfer_collate_fn`` + ``prepare_batch``: collation only (uint8 images: 4x fewer bytes to pin and copy),
  then, once the batch is on the run's device, ``prepare_batch(batch)`` converts and augments there as
  batched tensor operations. An engine opts in with::

      collate = getattr(data, "transfer_collate_fn", data.collate_fn)
      ...  # fetch, collate, batch_to_device(...)
      prepare = getattr(data, "prepare_batch", None)
      batch = prepare(batch) if prepare is not None and collate is not data.collate_fn else batch
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
from torch.utils.data import Dataset

from vfp.protocols import Batch, DataInfo, NormalizationStats
from vfp_il_components.data.specs import _WindowOptions
from vfp_il_components.data.windows import CollateAndPrepare, PrepareBatch, collate_windows

T = TypeVar("T")


def split_by_ratio(items: Sequence[T], ratio: float, seed: int) -> tuple[list[T], list[T]]:
    """Deterministic split of episodes: ``round(ratio * n)`` of them (at least one when ratio > 0 and
    there are two or more episodes, never all) go to validation; both parts keep the original order."""
    n = len(items)
    if ratio <= 0 or n < 2:
        return list(items), []
    num_val = min(max(round(ratio * n), 1), n - 1)
    generator = torch.Generator().manual_seed(seed)
    chosen = set(torch.randperm(n, generator=generator)[:num_val].tolist())
    train = [item for i, item in enumerate(items) if i not in chosen]
    val = [item for i, item in enumerate(items) if i in chosen]
    return train, val


class WindowDataModule(ABC):
    """Base of the data modules: ``setup()`` once, then datasets, info and statistics are available."""

    def __init__(self, config: _WindowOptions) -> None:
        self.config = config
        self.batch_size = config.batch_size
        self.num_workers = config.num_workers
        self._info: DataInfo | None = None
        self._train: Dataset[Any] | None = None
        self._val: Dataset[Any] | None = None
        self._stats: NormalizationStats = {}
        self._prepare = PrepareBatch([])

    def setup(self) -> None:
        """Open the data, validate it, split episodes, compute statistics and build the datasets (once)."""
        if self._info is None:
            self._setup()

    @abstractmethod
    def _setup(self) -> None:
        """Set ``_info``, ``_train``, ``_val``, ``_stats`` and ``_prepare``."""

    def _require_setup(self) -> None:
        if self._info is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must be called first")

    @property
    def info(self) -> DataInfo:
        self._require_setup()
        assert self._info is not None
        return self._info

    @property
    def train_dataset(self) -> Dataset[Any]:
        self._require_setup()
        assert self._train is not None
        return self._train

    @property
    def val_dataset(self) -> Dataset[Any] | None:
        self._require_setup()
        return self._val

    @property
    def collate_fn(self) -> Callable[[Any], Batch]:
        """Collation plus ``prepare_batch`` on the CPU: float images (augmented in training batches)."""
        return CollateAndPrepare(self._prepare)

    @property
    def transfer_collate_fn(self) -> Callable[[Any], Batch]:
        """Collation only: images stay uint8 (B, T, C, H, W); call ``prepare_batch`` on the device."""
        return collate_windows

    def prepare_batch(self, batch: Batch) -> Batch:
        """uint8 images to float in [0, 1] and augmentation of training batches, on the batch's device."""
        return self._prepare(batch)

    def normalization_stats(self) -> NormalizationStats:
        """Per feature ``mean``/``std``/``min``/``max`` of the training split (before normalization)."""
        self._require_setup()
        return {key: dict(values) for key, values in self._stats.items()}

    def normalization_modes(self) -> dict[str, str]:
        """How each normalized feature was normalized (``info.normalization``)."""
        return dict(self.info.normalization)
