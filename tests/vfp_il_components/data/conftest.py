"""Fixtures that write small HDF5 files in the robomimic layout under tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

WriteFile = Callable[..., Path]


def make_episode_arrays(
    length: int, offset: float = 0.0, *, image: bool = False, state_dim: int = 3
) -> dict[str, np.ndarray]:
    """Recognizable arrays: state[t] = offset + t + [0, 0.1, 0.2], action[t] = offset + t + [0, 0.5]."""
    t = np.arange(length, dtype=np.float32)[:, None]
    arrays = {
        "obs/state": offset + t + np.arange(state_dim, dtype=np.float32)[None] * 0.1,
        "actions": offset + t + np.array([0.0, 0.5], dtype=np.float32)[None],
    }
    if image:
        pixels = (np.arange(length)[:, None, None, None] * 7 + offset + np.arange(3)[None, None, None, :]) % 256
        arrays["obs/image"] = np.broadcast_to(pixels, (length, 6, 5, 3)).astype(np.uint8)
    return arrays


@pytest.fixture
def episode_arrays() -> Callable[..., dict[str, np.ndarray]]:
    """The ``make_episode_arrays`` helper, for tests that build their own files."""
    return make_episode_arrays


@pytest.fixture
def write_file(tmp_path: Path) -> WriteFile:
    """``write_file(episodes, masks=None, attrs=None, name="data.h5")`` with episodes {demo: {key: array}}."""

    def write(
        episodes: Mapping[str, Mapping[str, np.ndarray]],
        masks: Mapping[str, list[str]] | None = None,
        attrs: Mapping[str, Any] | None = None,
        name: str = "data.h5",
    ) -> Path:
        path = tmp_path / name
        with h5py.File(path, "w") as file:
            data = file.create_group("data")
            for demo, arrays in episodes.items():
                group = data.create_group(demo)
                for key, value in arrays.items():
                    group.create_dataset(key, data=value)
                if "actions" in arrays:
                    group.attrs["num_samples"] = len(arrays["actions"])
            for filter_name, demos in (masks or {}).items():
                file.create_dataset(f"mask/{filter_name}", data=np.array(demos, dtype="S"))
            for key, value in (attrs or {}).items():
                file.attrs[key] = value
        return path

    return write


@pytest.fixture
def simple_file(write_file: WriteFile) -> Path:
    """Three demos of lengths 5, 8 and 6 (offsets 0, 100, 200), with images and train/valid masks."""
    episodes = {
        "demo_0": make_episode_arrays(5, 0.0, image=True),
        "demo_1": make_episode_arrays(8, 100.0, image=True),
        "demo_2": make_episode_arrays(6, 200.0, image=True),
    }
    return write_file(episodes, masks={"train": ["demo_0", "demo_1"], "valid": ["demo_2"]})
