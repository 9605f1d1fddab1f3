"""Windows of observation history and action chunks, built by index arithmetic over frames held once.

Every frame of every episode is a sample. For a sample at frame ``t`` of an episode ``[start, end)``:

- observations come from frames ``t - history + 1 .. t``; those before ``start`` repeat the first frame
  and are marked in ``observation.<key>_is_pad``;
- actions come from frames ``t .. t + horizon - 1``; those at or past ``end`` repeat the last action and
  are marked in ``action_is_pad``.

This is the convention of LeRobot's ``delta_timestamps`` (clamped indices plus pad masks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from vfp.protocols import Batch

__all__ = [
    "EpisodeIndex",
    "FeatureReader",
    "ImageTensorReader",
    "TensorReader",
    "WindowDataset",
    "collate_windows",
    "uint8_hwc_to_float_chw",
]


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
    """Images held in RAM as uint8 frames, given (N, H, W, C) and kept (N, C, H, W); read as float
    (B, W, C, H, W) in [0, 1] (contiguous)."""

    def __init__(self, frames: torch.Tensor, channels_last: bool = True) -> None:
        super().__init__(frames.permute(0, 3, 1, 2) if channels_last else frames)

    def read(self, frames: np.ndarray) -> torch.Tensor:
        return super().read(frames).float().div_(255.0)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["frames"], channels_last=False)  # type: ignore[misc]


class WindowDataset(Dataset[dict[str, torch.Tensor]]):
    """Map-style dataset of windows over an ``EpisodeIndex``; ``__getitems__`` builds whole batches at once.

    ``observations`` maps batch keys (``observation.state``) to readers; ``transform`` (e.g. image
    augmentation) is applied to each built batch.
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
    ) -> None:
        self.index = index
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
        return batch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if index < 0:
            index += len(self)
        return {key: value[0] for key, value in self.__getitems__([index]).items()}


def collate_windows(data: Any) -> Batch:
    """Collate for torch's DataLoader: passes ``__getitems__``'s batch through, stacks a list of samples."""
    if isinstance(data, Mapping):
        return dict(data)
    if isinstance(data, Sequence) and data and all(isinstance(item, Mapping) for item in data):
        keys = data[0].keys()
        return {key: torch.stack([item[key] for item in data]) for key in keys}
    raise TypeError(f"cannot collate {type(data).__name__}: expected a batch dict or a list of sample dicts")
