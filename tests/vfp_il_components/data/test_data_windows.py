"""Window index arithmetic, the batched dataset and its collate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from vfp_il_components.data.windows import EpisodeIndex, TensorReader, WindowDataset, collate_windows


def make_dataset(lengths: list[int], history: int = 2, horizon: int = 3) -> WindowDataset:
    index = EpisodeIndex(lengths)
    frames = torch.arange(index.num_frames, dtype=torch.float32)[:, None]  # frame i holds value i
    return WindowDataset(
        index, {"observation.state": TensorReader(frames)}, TensorReader(frames * 10), history=history, horizon=horizon
    )


def test_observation_window_repeats_first_frame_and_marks_padding() -> None:
    index = EpisodeIndex([3, 4])
    frames, is_pad = index.windows(np.array([3, 4]), np.arange(-2, 1))
    np.testing.assert_array_equal(frames, [[3, 3, 3], [3, 3, 4]])
    np.testing.assert_array_equal(is_pad, [[True, True, False], [True, False, False]])


def test_action_window_repeats_last_frame_of_its_episode_and_marks_padding() -> None:
    index = EpisodeIndex([3, 4])
    frames, is_pad = index.windows(np.array([1, 5]), np.arange(0, 4))
    np.testing.assert_array_equal(frames, [[1, 2, 2, 2], [5, 6, 6, 6]])
    np.testing.assert_array_equal(is_pad, [[False, False, True, True], [False, False, True, True]])


def test_every_frame_is_a_sample() -> None:
    assert len(make_dataset([3, 4, 2])) == 9


def test_getitem_equals_the_matching_row_of_getitems() -> None:
    dataset = make_dataset([3, 4, 2])
    batch = dataset.__getitems__([0, 4, 8])
    for row, index in enumerate([0, 4, 8]):
        sample = dataset[index]
        for key, value in batch.items():
            assert torch.equal(sample[key], value[row]), key


def test_getitems_rejects_out_of_range_indices() -> None:
    dataset = make_dataset([3])
    with pytest.raises(IndexError, match="3 samples"):
        dataset.__getitems__([3])


def test_dataloader_uses_getitems_and_collate_passes_the_batch_through() -> None:
    dataset = make_dataset([5, 5])
    loader = DataLoader(dataset, batch_size=4, shuffle=False, collate_fn=collate_windows)
    batch = next(iter(loader))
    assert batch["observation.state"].shape == (4, 2, 1)
    assert batch["action"].shape == (4, 3, 1)
    assert torch.equal(batch["action"][:, 0, 0], torch.tensor([0.0, 10.0, 20.0, 30.0]))


def test_collate_stacks_a_list_of_samples() -> None:
    dataset = make_dataset([4])
    stacked = collate_windows([dataset[0], dataset[1]])
    expected = dataset.__getitems__([0, 1])
    assert stacked.keys() == expected.keys()
    assert all(torch.equal(stacked[k], expected[k]) for k in expected)
