"""Deterministic, resumable, sharded batches of training data, and plain batches of held-out data.

The engine owns the sampler so that a checkpoint can record exactly where the data stream stands:
the stream is a pure function of ``(seed, position)``. Each epoch is a fresh permutation of the
dataset; a global batch is ``batch_size * world_size`` consecutive indices of it, and each process
takes its own contiguous slice, so N processes see together what one process with an N times larger
batch would see. The incomplete last global batch of an epoch is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vfp.protocols import Batch

__all__ = ["BatchStream", "ShardedBatchSampler", "batch_to_device", "sequential_batches"]


class ShardedBatchSampler:
    """Endless batches of indices for one process, starting at global batch ``start``."""

    def __init__(
        self,
        dataset_size: int,
        batch_size: int,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
        shuffle: bool = True,
    ) -> None:
        global_batch = batch_size * world_size
        if dataset_size < global_batch:
            raise ValueError(
                f"the training split has {dataset_size} samples, fewer than one global batch "
                f"({batch_size} per process x {world_size} processes = {global_batch}); lower data.batch_size"
            )
        self.dataset_size = dataset_size
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start = start
        self.shuffle = shuffle
        self.batches_per_epoch = dataset_size // global_batch
        self._epoch = -1
        self._order = torch.arange(dataset_size)

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            if self.shuffle:
                mixed = int(np.random.SeedSequence([self.seed, epoch]).generate_state(1, dtype=np.uint64)[0])
                generator = torch.Generator().manual_seed(mixed & 0x7FFF_FFFF_FFFF_FFFF)
                self._order = torch.randperm(self.dataset_size, generator=generator)
            self._epoch = epoch
        return self._order

    def indices(self, position: int) -> torch.Tensor:
        """This process's indices (1-D int64) of global batch number ``position``."""
        epoch, index = divmod(position, self.batches_per_epoch)
        order = self._epoch_order(epoch)
        first = (index * self.world_size + self.rank) * self.batch_size
        return order[first : first + self.batch_size]

    def positions(self) -> Iterator[torch.Tensor]:
        """Index tensors from ``start`` on (the engine's in-process path)."""
        position = self.start
        while True:
            yield self.indices(position)
            position += 1

    def __iter__(self) -> Iterator[list[int]]:
        """Index lists from ``start`` on (a DataLoader ``batch_sampler``)."""
        for indices in self.positions():
            yield indices.tolist()


def batch_to_device(batch: Mapping[str, Any], device: torch.device, non_blocking: bool = False) -> Batch:
    """Move every tensor of a batch to ``device`` (other values pass through)."""
    if device.type == "cpu" and all(not isinstance(v, torch.Tensor) or v.device.type == "cpu" for v in batch.values()):
        return dict(batch)
    return {
        key: value.to(device, non_blocking=non_blocking) if isinstance(value, torch.Tensor) else value
        for key, value in batch.items()
    }


def _fetch(dataset: Dataset[Any], indices: torch.Tensor) -> Any:
    """``__getitems__(indices)`` with the int64 tensor when the dataset has it, else item by item."""
    getitems = getattr(dataset, "__getitems__", None)
    if getitems is not None:
        return getitems(indices)
    return [dataset[i] for i in indices.tolist()]


class BatchStream:
    """Training batches on the device, in the sampler's order.

    With ``num_workers == 0`` batches are fetched in-process without DataLoader machinery: the
    dataset's ``__getitems__`` receives a 1-D int64 tensor of indices (or ``__getitem__`` is called
    per index). Otherwise a DataLoader with persistent workers fetches them ahead, and
    ``__getitems__`` receives a list of ints as usual.

    ``prepare``, when given, runs on each batch once it is on the device (a data module's
    ``prepare_batch``: uint8 images to float and augmentation as batched device operations).
    On CUDA, in-process batches are pinned and copied without blocking, and ``prefetch`` (on by
    default there) keeps the next batch's fetch and copy one step ahead of the training step.
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        collate_fn: Callable[[Any], Batch],
        sampler: ShardedBatchSampler,
        *,
        device: torch.device,
        num_workers: int = 0,
        prepare: Callable[[Batch], Batch] | None = None,
        prefetch: bool | None = None,
    ) -> None:
        self.device = device
        self._prepare = prepare
        self._pin = device.type == "cuda"
        self.prefetch = self._pin if prefetch is None else prefetch
        self._ahead: Batch | None = None
        self.non_blocking = device.type == "cuda"
        self._dataset = dataset
        self._collate = collate_fn
        self._indices = sampler.positions()
        self._loader_iter: Iterator[Batch] | None = None
        if num_workers > 0:
            generator = torch.Generator().manual_seed(sampler.seed * 1_000_003 + sampler.start)
            loader = DataLoader(
                dataset,
                batch_sampler=sampler,
                collate_fn=collate_fn,
                num_workers=num_workers,
                pin_memory=device.type == "cuda",
                persistent_workers=True,
                generator=generator,
            )
            self._loader_iter = iter(loader)

    def __iter__(self) -> Iterator[Batch]:
        return self

    def close(self) -> None:
        """Stop the DataLoader's worker processes, if any."""
        self._ahead = None
        self._loader_iter = None  # its finalizer shuts the workers down

    def _load(self) -> Batch:
        """The next batch, its copy to the device started (non-blocking from pinned memory on CUDA)."""
        if self._loader_iter is not None:
            batch = next(self._loader_iter)  # the DataLoader pins it on CUDA
        else:
            batch = self._collate(_fetch(self._dataset, next(self._indices)))
            if self._pin:
                batch = {k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        return batch_to_device(batch, self.device, self.non_blocking)

    def __next__(self) -> Batch:
        if self.prefetch:
            # One batch ahead: the next batch is fetched, collated and its copy queued while the
            # caller computes on this one. The order of batches (and so exact resume) is unchanged.
            batch = self._ahead if self._ahead is not None else self._load()
            self._ahead = self._load()
        else:
            batch = self._load()
        return self._prepare(batch) if self._prepare is not None else batch


def sequential_batches(
    dataset: Dataset[Any],
    collate_fn: Callable[[Any], Batch],
    batch_size: int,
    device: torch.device,
    max_batches: int | None = None,
) -> Iterator[Batch]:
    """Held-out batches in order (the last one may be smaller), on ``device``."""
    size = len(dataset)  # type: ignore[arg-type]
    for count, first in enumerate(range(0, size, batch_size)):
        if max_batches is not None and count >= max_batches:
            return
        indices = torch.arange(first, min(first + batch_size, size))
        yield batch_to_device(collate_fn(_fetch(dataset, indices)), device)
