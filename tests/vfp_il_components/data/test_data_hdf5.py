"""The `hdf5` dataloader on small robomimic-layout files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from vfp_il_components.data.hdf5 import HDF5DataModule, build_hdf5_data
from vfp_il_components.data.normalization import unnormalize
from vfp_il_components.data.specs import HDF5DataConfig
from vfp_il_components.tasks import get_task


def module(path: Path, **options: Any) -> HDF5DataModule:
    options.setdefault("horizon", 4)
    data = build_hdf5_data(HDF5DataConfig(type="hdf5", path=str(path), **options))
    data.setup()
    return data


FILTERS = {"train_filter": "train", "val_filter": "valid"}


def test_batch_keys_shapes_and_dtypes(simple_file: Path) -> None:
    data = module(simple_file, image_keys=["image"], history=2, horizon=4, **FILTERS)
    raw = data.train_dataset.__getitems__([0, 1, 2])
    expected = {
        "observation.state": ((3, 2, 3), torch.float32),
        "observation.state_is_pad": ((3, 2), torch.bool),
        "observation.image": ((3, 2, 3, 6, 5), torch.uint8),
        "observation.image_is_pad": ((3, 2), torch.bool),
        "action": ((3, 4, 2), torch.float32),
        "action_is_pad": ((3, 4), torch.bool),
    }
    assert {k: (tuple(v.shape), v.dtype) for k, v in data.transfer_collate_fn(raw).items()} == expected
    expected["observation.image"] = ((3, 2, 3, 6, 5), torch.float32)
    assert {k: (tuple(v.shape), v.dtype) for k, v in data.collate_fn(raw).items()} == expected


def test_windows_hold_history_and_chunk_with_edge_padding(simple_file: Path) -> None:
    data = module(simple_file, history=2, horizon=4, state_normalization="none", action_normalization="none", **FILTERS)
    # train split = demo_0 (5 steps) then demo_1 (8 steps): sample 5 is demo_1 step 0, sample 3 is demo_0 step 3
    first = data.train_dataset[5]
    assert first["observation.state"][:, 0].tolist() == [100.0, 100.0]
    assert first["observation.state_is_pad"].tolist() == [True, False]
    late = data.train_dataset[3]
    assert late["action"][:, 0].tolist() == [3.0, 4.0, 4.0, 4.0]
    assert late["action_is_pad"].tolist() == [False, False, True, True]


def test_images_become_float_chw_in_unit_range(simple_file: Path) -> None:
    data = module(simple_file, image_keys=["image"], **FILTERS)
    with h5py.File(simple_file) as file:
        stored = file["data/demo_0/obs/image"][2]  # (H, W, C) uint8
    image = data.collate_fn(data.train_dataset.__getitems__([2]))["observation.image"][0, -1]
    expected = torch.from_numpy(stored).permute(2, 0, 1).float() / 255.0
    assert torch.equal(image, expected)
    assert torch.equal(data.train_dataset[2]["observation.image"][-1], torch.from_numpy(stored).permute(2, 0, 1))


@pytest.mark.parametrize("cache", ["none", "all"])
def test_cache_modes_return_the_same_batches(simple_file: Path, cache: str) -> None:
    reference = module(simple_file, image_keys=["image"], cache="low_dim", horizon=3, **FILTERS).train_dataset
    other = module(simple_file, image_keys=["image"], cache=cache, horizon=3, **FILTERS).train_dataset
    indices = list(range(len(reference)))
    expected, actual = reference.__getitems__(indices), other.__getitems__(indices)
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key


def test_split_follows_filter_keys(simple_file: Path) -> None:
    data = module(simple_file, horizon=2, **FILTERS)
    assert len(data.train_dataset) == 5 + 8
    assert data.val_dataset is not None
    assert len(data.val_dataset) == 6


def test_val_filter_alone_trains_on_the_other_demos(simple_file: Path) -> None:
    data = module(simple_file, horizon=2, val_filter="valid")
    assert len(data.train_dataset) == 13
    assert data.info.extra["train_episodes"] == 2


def test_ratio_split_is_deterministic_and_disjoint(write_file: Any, episode_arrays: Any) -> None:
    path = write_file({f"demo_{i}": episode_arrays(4, 10.0 * i) for i in range(10)})

    def val_offsets(seed: int) -> set[float]:
        val = module(path, horizon=2, val_ratio=0.3, split_seed=seed, state_normalization="none").val_dataset
        assert val is not None
        return {float(val[i]["observation.state"][-1, 0]) - (i % 4) for i in range(len(val))}

    first, again, other = val_offsets(0), val_offsets(0), val_offsets(1)
    assert len(first) == 3
    assert first == again
    assert first != other


def test_statistics_come_from_the_training_split(simple_file: Path) -> None:
    data = module(simple_file, horizon=2, **FILTERS)
    stats = data.normalization_stats()
    with h5py.File(simple_file) as file:
        actions = np.concatenate([file["data/demo_0/actions"][()], file["data/demo_1/actions"][()]])
    torch.testing.assert_close(stats["action"]["mean"], torch.from_numpy(actions.mean(0)))
    torch.testing.assert_close(stats["action"]["std"], torch.from_numpy(actions.std(0)))
    assert stats["action"]["max"].tolist() == actions.max(0).tolist()
    assert set(stats) == {"observation.state", "action"}


def test_min_max_actions_are_in_unit_range_and_unnormalize_back(simple_file: Path) -> None:
    data = module(simple_file, horizon=2, action_normalization="min_max", **FILTERS)
    batch = data.train_dataset.__getitems__(list(range(13)))
    assert batch["action"].min() >= -1.0 - 1e-6
    assert batch["action"].max() <= 1.0 + 1e-6
    raw = unnormalize(data.normalization_stats(), "action", batch["action"][:, 0], "min_max")
    torch.testing.assert_close(raw[:5, 0], torch.arange(5.0), atol=1e-4, rtol=0)


def test_info_describes_features_and_normalization(simple_file: Path) -> None:
    info = module(simple_file, image_keys=["image"], history=3, horizon=2, **FILTERS).info
    assert {k: (f.shape, f.role) for k, f in info.features.items()} == {
        "observation.state": ((3,), "state"),
        "observation.image": ((3, 6, 5), "image"),
        "action": ((2,), "action"),
    }
    assert (info.history, info.horizon, info.action_dim) == (3, 2, 2)
    assert info.extra["normalization"] == {"observation.state": "mean_std", "action": "min_max"}


def test_dataloader_workers_reopen_the_file(simple_file: Path) -> None:
    data = module(simple_file, image_keys=["image"], cache="none", horizon=2, **FILTERS)
    loader = DataLoader(data.train_dataset, batch_size=4, num_workers=2, collate_fn=data.collate_fn)
    batches = list(loader)
    assert sum(b["action"].shape[0] for b in batches) == 13


def test_generate_writes_a_synthetic_dataset_when_the_file_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "made" / "demo.h5"
    generate = {"task": "mixture", "episodes": 6, "seed": 3, "task_options": {"num_modes": 4}}
    data = module(path, generate=generate, horizon=4)
    assert path.is_file()
    assert data.info.task == "mixture"
    task = get_task(data.info.task, **data.info.extra["task_options"])
    assert len(task.mode_names) == 4


def test_generate_leaves_an_existing_file_alone(simple_file: Path) -> None:
    before = simple_file.read_bytes()
    module(simple_file, generate={"task": "mixture", "episodes": 2}, horizon=2, **FILTERS)
    assert simple_file.read_bytes() == before


def test_augmentation_changes_training_images_only(simple_file: Path) -> None:
    options = {"image_keys": ["image"], "horizon": 2, "val_ratio": 0.0}
    data = module(simple_file, **options)
    plain = data.collate_fn(data.train_dataset.__getitems__([0, 1, 2, 3]))
    augmentation = {"enabled": True, "blur_probability": 1.0, "crop_padding": 1}
    data = module(simple_file, augmentation=augmentation, **options)
    augmented = data.collate_fn(data.train_dataset.__getitems__([0, 1, 2, 3]))
    assert not torch.equal(plain["observation.image"], augmented["observation.image"])
    assert torch.equal(plain["observation.state"], augmented["observation.state"])
    assert augmented["observation.image"].min() >= 0.0
    assert augmented["observation.image"].max() <= 1.0


def test_augmentation_draws_depend_only_on_the_batch_so_resume_repeats_them(simple_file: Path) -> None:
    options = {"image_keys": ["image"], "horizon": 2, "val_ratio": 0.0, "augmentation": {"enabled": True}}
    first, resumed = module(simple_file, **options), module(simple_file, **options)
    batches = [[3, 1, 4, 0], [5, 9, 2, 6]]
    straight = [first.collate_fn(first.train_dataset.__getitems__(b)) for b in batches]
    torch.rand(7)  # whatever else consumed random numbers meanwhile
    again = resumed.collate_fn(resumed.train_dataset.__getitems__(batches[1]))  # a run resumed at batch 1
    assert torch.equal(straight[1]["observation.image"], again["observation.image"])
    assert not torch.equal(straight[0]["observation.image"][:2], straight[1]["observation.image"][:2])
    other = module(simple_file, **{**options, "augmentation": {"enabled": True, "seed": 1}})
    reseeded = other.collate_fn(other.train_dataset.__getitems__(batches[1]))
    assert not torch.equal(straight[1]["observation.image"], reseeded["observation.image"])


def test_prepare_batch_on_the_device_equals_the_cpu_collate(simple_file: Path) -> None:
    """The uint8 transfer path: collate uint8, move, prepare_batch there == float collate on the CPU."""
    augmentation = {"enabled": True, "crop_padding": 2, "blur_probability": 0.5}
    data = module(simple_file, image_keys=["image"], horizon=2, val_ratio=0.0, augmentation=augmentation)
    raw = data.train_dataset.__getitems__([0, 7, 3, 12])
    transfer = data.transfer_collate_fn(raw)
    assert transfer["observation.image"].dtype == torch.uint8
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in transfer.items()}
    prepared = data.prepare_batch(moved)
    expected = data.collate_fn(data.train_dataset.__getitems__([0, 7, 3, 12]))
    assert set(prepared) == set(expected)  # the augmentation seed does not reach the model
    torch.testing.assert_close(prepared["observation.image"].cpu(), expected["observation.image"], atol=1e-5, rtol=0)
    assert not torch.equal(expected["observation.image"], raw["observation.image"].float() / 255)


def test_random_shift_moves_whole_images_by_at_most_the_padding() -> None:
    from vfp_il_components.data.augment import ImageAugmentation
    from vfp_il_components.data.specs import ImageAugmentationConfig

    config = ImageAugmentationConfig(brightness=0, contrast=0, saturation=0, blur_probability=0, crop_padding=2)
    images = torch.zeros(64, 2, 1, 9, 9)
    images[:, :, :, 4, 4] = 1.0  # one bright pixel in the middle
    shifted = ImageAugmentation(config, ["image"])({"image": images}, seed=0)["image"]
    rows, cols = shifted.sum(dim=(1, 2, 4)).argmax(dim=1), shifted.sum(dim=(1, 2, 3)).argmax(dim=1)
    assert shifted.sum(dim=(2, 3, 4)).eq(1).all()  # the pixel survives, once per time step
    assert torch.equal(shifted[:, 0], shifted[:, 1])  # one shift per sample, shared over its history
    assert set((rows - 4).tolist()) == set(range(-2, 3))
    assert set((cols - 4).tolist()) == set(range(-2, 3))
