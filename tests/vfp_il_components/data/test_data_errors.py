"""Bad data gets an error naming the file, the episode and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vfp_il_components.data.errors import DataError
from vfp_il_components.data.hdf5 import build_hdf5_data
from vfp_il_components.data.specs import HDF5DataConfig


def setup(path: Path, **options: Any) -> None:
    options.setdefault("horizon", 3)
    build_hdf5_data(HDF5DataConfig(type="hdf5", path=str(path), **options)).setup()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere\.h5: file not found"):
        setup(tmp_path / "nowhere.h5")


def test_not_an_hdf5_file(tmp_path: Path) -> None:
    path = tmp_path / "text.h5"
    path.write_text("hello")
    with pytest.raises(DataError, match="cannot be opened as HDF5"):
        setup(path)


def test_missing_key_names_file_episode_key_and_what_exists(write_file: Any, episode_arrays: Any) -> None:
    path = write_file({"demo_0": episode_arrays(5), "demo_1": {"actions": episode_arrays(5)["actions"]}})
    with pytest.raises(DataError) as info:
        setup(path)
    message = str(info.value)
    assert str(path) in message
    assert "episode demo_1" in message
    assert "key 'obs/state'" in message
    assert "available: actions" in message


def test_mismatched_lengths(write_file: Any, episode_arrays: Any) -> None:
    arrays = episode_arrays(5)
    arrays["obs/state"] = arrays["obs/state"][:4]
    path = write_file({"demo_0": arrays})
    with pytest.raises(
        DataError, match=r"episode demo_0, key 'obs/state': mismatched lengths: 4 steps, but actions has 5"
    ):
        setup(path)


def test_num_samples_attribute_disagreeing_with_actions(write_file: Any, episode_arrays: Any) -> None:
    path = write_file({"demo_0": episode_arrays(5)})
    import h5py

    with h5py.File(path, "a") as file:
        file["data/demo_0"].attrs["num_samples"] = 7
    with pytest.raises(DataError, match="num_samples attribute says 7, actions have 5 steps"):
        setup(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_actions(write_file: Any, episode_arrays: Any, bad: float) -> None:
    arrays = episode_arrays(6)
    arrays["actions"][4, 1] = bad
    path = write_file({"demo_0": episode_arrays(6), "demo_1": arrays})
    with pytest.raises(
        DataError, match=r"episode demo_1, key 'actions': 1 step\(s\) hold NaN or Inf values \(first at step 4\)"
    ):
        setup(path, val_ratio=0.0)


def test_empty_episode(write_file: Any, episode_arrays: Any) -> None:
    empty = {"obs/state": np.zeros((0, 3), np.float32), "actions": np.zeros((0, 2), np.float32)}
    path = write_file({"demo_0": episode_arrays(5), "demo_1": empty})
    with pytest.raises(DataError, match=r"episode demo_1, key 'actions': empty episode"):
        setup(path)


def test_horizon_longer_than_every_episode(write_file: Any, episode_arrays: Any) -> None:
    path = write_file({"demo_0": episode_arrays(5), "demo_1": episode_arrays(7)})
    with pytest.raises(DataError, match=r"horizon 8 is longer than every episode \(the longest, demo_1, has 7 steps\)"):
        setup(path, horizon=8)


def test_unknown_filter_lists_the_filters(simple_file: Path) -> None:
    with pytest.raises(DataError, match=r"train_filter 'training': no such filter \(available: train, valid\)"):
        setup(simple_file, train_filter="training")


def test_filter_listing_unknown_demos(write_file: Any, episode_arrays: Any) -> None:
    path = write_file({"demo_0": episode_arrays(5)}, masks={"train": ["demo_0", "demo_9"]})
    with pytest.raises(DataError, match=r"key 'mask/train': lists demos that do not exist under data/: \['demo_9'\]"):
        setup(path)


def test_image_key_that_is_not_uint8_hwc(simple_file: Path) -> None:
    with pytest.raises(DataError, match=r"key 'obs/state': expected uint8 images \(T, H, W, C\)"):
        setup(simple_file, state_keys=[], image_keys=["state"])


def test_image_listed_as_state_suggests_image_keys(simple_file: Path) -> None:
    with pytest.raises(DataError, match="list it in image_keys"):
        setup(simple_file, state_keys=["image"])


def test_no_data_group(tmp_path: Path) -> None:
    import h5py

    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as file:
        file.create_group("something")
    with pytest.raises(DataError, match="no 'data' group"):
        setup(path)
