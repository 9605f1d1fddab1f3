"""What the HDF5 and LeRobot data modules share: the ``DataModule`` surface, splits and statistics."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
from torch.utils.data import Dataset

from vfp.protocols import Batch, DataInfo, NormalizationStats
from vfp_il_components.data.specs import _WindowOptions
from vfp_il_components.data.windows import collate_windows

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

    def setup(self) -> None:
        """Open the data, validate it, split episodes, compute statistics and build the datasets (once)."""
        if self._info is None:
            self._setup()

    @abstractmethod
    def _setup(self) -> None:
        """Set ``_info``, ``_train``, ``_val`` and ``_stats``."""

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
        return collate_windows

    def normalization_stats(self) -> NormalizationStats:
        """Per feature ``mean``/``std``/``min``/``max`` of the training split (before normalization)."""
        self._require_setup()
        return {key: dict(values) for key, values in self._stats.items()}

    def normalization_modes(self) -> dict[str, str]:
        """How each normalized feature was normalized (also in ``info.extra["normalization"]``)."""
        return dict(self.info.extra.get("normalization", {}))
