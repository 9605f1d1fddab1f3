"""Windows of observation history and action chunks, built by index arithmetic over frames held once.

Every frame of every episode is a sample. For a sample at frame ``t`` of an episode ``[start, end)``:

- observations come from frames ``t - history + 1 .. t``; those before ``start`` repeat the first frame
  and are marked in ``observation.<key>_is_pad``;
- actions come from frames ``t .. t + horizon - 1``; those at or past ``end`` repeat the last action and
  are marked in ``action_is_pad``.

This is the convention of LeRobot's ``delta_timestamps`` (clamped indices plus pad masks).

Images stay uint8 (B, T, C, H, W) from the readers through collation (and, when the engine asks for it,
through the host-to-device copy); ``PrepareBatch`` turns them into float in [0, 1] and augments training
batches, as batched tensor operations wherever the batch lives. A training batch that should be augmented
carries its augmentation seed under ``AUGMENT_SEED`` (a Python int derived from the batch's sample
indices), which ``PrepareBatch`` removes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from vfp.protocols import Batch

__all__ = [
    "AUGMENT_SEED",
    "EpisodeIndex",
    "FeatureReader",
    "ImageTensorReader",
    "PrepareBatch",
    "TensorReader",
    "WindowDataset",
    "collate_windows",
    "uint8_hwc_to_chw",
    "uint8_hwc_to_float_chw",
]

AUGMENT_SEED = "_vfp_augment_seed"
"""Batch key of a training batch's augmentation seed (removed by ``PrepareBatch``)."""


class EpisodeIndex:
    """Where each episode's frames lie in a flat array of frames (episodes stored back to back).

    Index arithmetic runs in numpy: on batches of a few hundred windows its per-call overhead is a
    fraction of torch's.
    """

    def __init__(self, lengths: Sequence[int]) -> None:
        if any(length <= 0 for length in lengths):
            raise ValueError(f"episode lengths must be positive, got {list(lengths)}")
        self.lengths = np.asarray(list(lengths), dtype=np.int64)
        self.starts = np.cumsum(self.lengths) - self.lengths
        self.frame_episode = np.repeat(np.arange(len(self.lengths)), self.lengths)

    @property
    def num_episodes(self) -> int:
        return len(self.lengths)

    @property
    def num_frames(self) -> int:
        return int(self.lengths.sum())

    def windows(self, frames: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame indices (B, W) of ``frames + offsets`` clamped to each frame's episode, and the pad mask."""
        episode = self.frame_episode[frames]
        first = self.starts[episode][:, None]
        last = first + self.lengths[episode][:, None] - 1
        wanted = frames[:, None] + offsets[None, :]
        is_pad = (wanted < first) | (wanted > last)
        return np.clip(wanted, first, last), is_pad


class FeatureReader(Protocol):
    """Reads one feature at frame indices (B, W) (int64 numpy) and returns it as in batches (B, W, ...)."""

    def read(self, frames: np.ndarray) -> torch.Tensor: ...


def uint8_hwc_to_float_chw(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (..., H, W, C) to contiguous float (..., C, H, W) in [0, 1]."""
    return images.movedim(-1, -3).contiguous().float().div_(255.0)


def uint8_hwc_to_chw(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (..., H, W, C) to contiguous uint8 (..., C, H, W)."""
    return images.movedim(-1, -3).contiguous()


class TensorReader:
    """A feature held in RAM as one tensor of frames (N, ...), already in batch form (e.g. normalized).

    Gathers with ``np.take`` on a view of the tensor's memory (several times faster than torch's
    advanced indexing on CPU).
    """

    def __init__(self, frames: torch.Tensor) -> None:
        self.frames = frames.contiguous()
        self._array = self.frames.numpy()

    def read(self, frames: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.take(self._array, frames, axis=0))

    def __getstate__(self) -> dict[str, Any]:
        return {"frames": self.frames}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["frames"])  # type: ignore[misc]


class ImageTensorReader(TensorReader):
    """Images held in RAM as uint8 frames, given (N, H, W, C) and kept (N, C, H, W); read as uint8
    (B, W, C, H, W) (contiguous; ``PrepareBatch`` makes them float)."""

    def __init__(self, frames: torch.Tensor, channels_last: bool = True) -> None:
        super().__init__(frames.permute(0, 3, 1, 2) if channels_last else frames)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["frames"], channels_last=False)  # type: ignore[misc]


class WindowDataset(Dataset[dict[str, torch.Tensor]]):
    """Map-style dataset of windows over an ``EpisodeIndex``; ``__getitems__`` builds whole batches at once.

    ``observations`` maps batch keys (``observation.state``) to readers; ``transform`` is applied to each
    built batch. With ``augment_seed`` set, each batch carries ``AUGMENT_SEED`` (from that seed and the
    batch's indices) so that ``PrepareBatch`` augments it reproducibly.
    """

    def __init__(
        self,
        index: EpisodeIndex,
        observations: Mapping[str, FeatureReader],
        action: FeatureReader,
        *,
        history: int,
        horizon: int,
        action_key: str = "action",
        transform: Callable[[Batch], Batch] | None = None,
        augment_seed: int | None = None,
    ) -> None:
        self.index = index
        self.augment_seed = augment_seed
        self.observations = dict(observations)
        self.action = action
        self.action_key = action_key
        self.history = history
        self.horizon = horizon
        self.transform = transform
        self.observation_offsets = np.arange(1 - history, 1)
        self.action_offsets = np.arange(0, horizon)

    def __len__(self) -> int:
        return self.index.num_frames

    def __getitems__(self, indices: Sequence[int] | torch.Tensor) -> Batch:
        frames = indices.numpy() if isinstance(indices, torch.Tensor) else np.asarray(indices)
        frames = frames.astype(np.int64, copy=False)
        if frames.ndim != 1:
            raise ValueError(f"indices must be one-dimensional, got shape {frames.shape}")
        if len(frames) and (frames.min() < 0 or frames.max() >= self.index.num_frames):
            raise IndexError(f"window index out of range for a dataset of {len(self)} samples")
        observation_frames, observation_pad = self.index.windows(frames, self.observation_offsets)
        action_frames, action_pad = self.index.windows(frames, self.action_offsets)
        observation_mask = torch.from_numpy(observation_pad)
        batch: Batch = {}
        for key, reader in self.observations.items():
            batch[key] = reader.read(observation_frames)
            batch[f"{key}_is_pad"] = observation_mask
        batch[self.action_key] = self.action.read(action_frames)
        batch[f"{self.action_key}_is_pad"] = torch.from_numpy(action_pad)
        if self.transform is not None:
            batch = self.transform(batch)
        if self.augment_seed is not None:
            from vfp_il_components.data.augment import batch_seed

            batch[AUGMENT_SEED] = batch_seed(self.augment_seed, frames)  # type: ignore[assignment]
        return batch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if index < 0:
            index += len(self)
        return {
            key: value[0] if isinstance(value, torch.Tensor) else value
            for key, value in self.__getitems__([index]).items()
        }


def collate_windows(data: Any) -> Batch:
    """Collate for torch's DataLoader: passes ``__getitems__``'s batch through, stacks a list of samples
    (images stay uint8; a list of samples with augmentation seeds gets one seed derived from them all)."""
    if isinstance(data, Mapping):
        return dict(data)
    if isinstance(data, Sequence) and data and all(isinstance(item, Mapping) for item in data):
        keys = [key for key in data[0] if key != AUGMENT_SEED]
        batch: Batch = {key: torch.stack([item[key] for item in data]) for key in keys}
        if AUGMENT_SEED in data[0]:
            from vfp_il_components.data.augment import batch_seed

            seeds = np.asarray([item[AUGMENT_SEED] for item in data], dtype=np.int64)
            batch[AUGMENT_SEED] = batch_seed(0, seeds)  # type: ignore[assignment]
        return batch
    raise TypeError(f"cannot collate {type(data).__name__}: expected a batch dict or a list of sample dicts")


class PrepareBatch:
    """uint8 images to float in [0, 1], then augmentation of batches that carry ``AUGMENT_SEED``; batched
    tensor operations on whatever device the batch is on. Float images (the plain LeRobot path) pass."""

    def __init__(self, image_keys: Sequence[str], augmentation: Callable[..., Batch] | None = None) -> None:
        self.image_keys = list(image_keys)
        self.augmentation = augmentation

    def __call__(self, batch: Batch) -> Batch:
        out = dict(batch)
        seed = out.pop(AUGMENT_SEED, None)
        for key in self.image_keys:
            value = out.get(key)
            if value is not None and value.dtype == torch.uint8:
                out[key] = value.float().div_(255.0)
        if seed is not None and self.augmentation is not None:
            out = self.augmentation(out, seed=int(seed))
        return out


class CollateAndPrepare:
    """``collate_windows`` followed by ``PrepareBatch`` (the CPU path: float batches out of the loader)."""

    def __init__(self, prepare: PrepareBatch) -> None:
        self.prepare = prepare

    def __call__(self, data: Any) -> Batch:
        return self.prepare(collate_windows(data))
