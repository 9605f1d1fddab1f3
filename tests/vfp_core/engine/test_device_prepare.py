"""Training batches of a data module with ``transfer_collate_fn`` + ``prepare_batch`` are finished on the device."""

from __future__ import annotations

from typing import Any

import torch

from vfp.engine.sampler import BatchStream, ShardedBatchSampler
from vfp.engine.setup import _transfer_path


class _Frames(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"observation.images.cam": torch.full((3, 2, 2), index, dtype=torch.uint8)}


def _stack(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


class _UInt8Module:
    """Collation keeps uint8; ``prepare_batch`` makes floats in [0, 1] (and records the device it saw)."""

    seen: list[torch.device]

    def __init__(self) -> None:
        self.seen = []

    def collate_fn(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return self.prepare_batch(_stack(items))

    def transfer_collate_fn(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return _stack(items)

    def prepare_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.seen.append(batch["observation.images.cam"].device)
        return {key: value.float() / 255 for key, value in batch.items()}


class _PlainModule:
    def collate_fn(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return _stack(items)


def test_a_module_with_a_transfer_path_is_prepared_after_the_copy() -> None:
    data = _UInt8Module()
    collate, prepare = _transfer_path(data)  # type: ignore[arg-type]
    assert prepare is not None
    stream = BatchStream(
        _Frames(), collate, ShardedBatchSampler(8, 4, seed=0), device=torch.device("cpu"), prepare=prepare
    )
    batch = next(stream)
    images = batch["observation.images.cam"]
    assert images.dtype == torch.float32
    assert float(images.max()) <= 7 / 255 + 1e-6
    assert data.seen == [torch.device("cpu")]


def test_a_module_without_one_keeps_its_collate_fn() -> None:
    data = _PlainModule()
    collate, prepare = _transfer_path(data)  # type: ignore[arg-type]
    assert prepare is None
    assert collate == data.collate_fn
    batch = next(BatchStream(_Frames(), collate, ShardedBatchSampler(8, 4, seed=0), device=torch.device("cpu")))
    assert batch["observation.images.cam"].dtype == torch.uint8


def test_prefetching_one_batch_ahead_gives_the_same_batches_in_the_same_order() -> None:
    data = _UInt8Module()
    collate, prepare = _transfer_path(data)  # type: ignore[arg-type]

    def stream(prefetch: bool) -> BatchStream:
        sampler = ShardedBatchSampler(8, 2, seed=3)
        return BatchStream(_Frames(), collate, sampler, device=torch.device("cpu"), prepare=prepare, prefetch=prefetch)

    plain, ahead = stream(False), stream(True)
    assert plain.prefetch is False
    assert ahead.prefetch is True
    for _ in range(6):  # across an epoch boundary (4 batches per epoch)
        a, b = next(plain), next(ahead)
        assert torch.equal(a["observation.images.cam"], b["observation.images.cam"])
    assert ahead._ahead is not None  # the seventh batch is already loaded
    ahead.close()
    assert ahead._ahead is None
