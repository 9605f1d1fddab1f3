"""The ``hdf5`` dataloader: episodic HDF5 files in the robomimic layout, read through h5py.

Layout: ``data/<demo>/obs/<key>`` (T, ...) per observation key, ``data/<demo>/actions`` (T, A), optional
``rewards``, ``dones``, ``next_obs``, ``states``; a ``num_samples`` attribute per demo; ``mask/<filter>``
datasets listing demo names. Files written by ``vfp data demo`` also carry ``vfp_task`` attributes.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from vfp.protocols import DataInfo, FeatureInfo
from vfp_il_components.data.augment import ImageAugmentation
from vfp_il_components.data.errors import DataError, DataWarning
from vfp_il_components.data.hdf5_checks import (
    action_length,
    check_numbers,
    dataset_keys,
    demo_group,
    demo_names,
    demo_sort_key,
    hdf5_errors,
    integer_attribute,
    open_hdf5,
    read_task_attributes,
)
from vfp_il_components.data.module import WindowDataModule, split_by_ratio
from vfp_il_components.data.normalization import compute_stats, normalize
from vfp_il_components.data.specs import DemoGenerationConfig, HDF5DataConfig
from vfp_il_components.data.windows import (
    EpisodeIndex,
    FeatureReader,
    ImageTensorReader,
    PrepareBatch,
    TensorReader,
    WindowDataset,
    uint8_hwc_to_chw,
)

__all__ = ["HDF5DataModule", "HDF5Layout", "build_hdf5_data", "demo_sort_key", "read_layout"]

ACTION = "action"


@dataclass
class HDF5Layout:
    """What a validated file holds: episodes in order with their lengths, and per-step feature shapes."""

    path: Path
    episodes: dict[str, int]
    state_shapes: dict[str, tuple[int, ...]]
    image_shapes: dict[str, tuple[int, int, int]]
    """(H, W, C) as stored."""
    action_shape: tuple[int, ...]
    filters: dict[str, list[str]] = field(default_factory=dict)
    task: str | None = None
    task_options: dict[str, Any] = field(default_factory=dict)
    fps: int | None = None


def _child(group: h5py.Group, key: str, path: Path, episode: str) -> h5py.Dataset:
    if key not in group:
        available = sorted(dataset_keys(group))
        raise DataError(f"missing (available: {', '.join(available) or 'none'})", file=path, episode=episode, key=key)
    with hdf5_errors(path, episode, key):
        node = group[key]
    if not isinstance(node, h5py.Dataset):
        raise DataError("expected a dataset, found a group", file=path, episode=episode, key=key)
    return node


def _step_shape(dataset: h5py.Dataset) -> tuple[int, ...]:
    return tuple(dataset.shape[1:]) or (1,)


def _read_filters(file: h5py.File, path: Path, names: set[str]) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    if "mask" not in file:
        return filters
    if not isinstance(file["mask"], h5py.Group):
        raise DataError(
            "expected a group of filters (mask/<filter>: demo names), found a dataset", file=path, key="mask"
        )
    for key, node in file["mask"].items():
        if not isinstance(node, h5py.Dataset):
            raise DataError("expected a dataset of demo names, found a group", file=path, key=f"mask/{key}")
        with hdf5_errors(path, key=f"mask/{key}"):
            values = np.asarray(node[()]).reshape(-1)
        listed = [n.decode(errors="replace") if isinstance(n, bytes) else str(n) for n in values]
        unknown = [n for n in listed if n not in names]
        if unknown:
            raise DataError(f"lists demos that do not exist under data/: {unknown[:5]}", file=path, key=f"mask/{key}")
        filters[key] = listed
    return filters


def read_layout(
    file: h5py.File,
    path: Path,
    state_keys: Sequence[str],
    image_keys: Sequence[str],
    action_key: str,
) -> HDF5Layout:
    """Check the structure of every demo (keys, shapes, dtypes, lengths) and the file's attributes."""
    names = demo_names(file, path)
    if not names:
        raise DataError("the 'data' group holds no demos", file=path)
    episodes: dict[str, int] = {}
    state_shapes: dict[str, tuple[int, ...]] = {}
    image_shapes: dict[str, tuple[int, int, int]] = {}
    action_shape: tuple[int, ...] | None = None
    for name in names:
        demo = demo_group(file, path, name)
        actions = _child(demo, action_key, path, name)
        length = action_length(actions, path, name, action_key)
        if length == 0:
            raise DataError("empty episode (0 steps)", file=path, episode=name, key=action_key)
        if action_shape is None:
            action_shape = _step_shape(actions)
        elif _step_shape(actions) != action_shape:
            raise DataError(
                f"action shape {_step_shape(actions)} differs from {action_shape} in the first demo",
                file=path, episode=name, key=action_key,
            )  # fmt: skip
        num_samples = integer_attribute(demo.attrs, "num_samples", path, name)
        if num_samples is not None and num_samples != length:
            raise DataError(
                f"mismatched lengths: num_samples attribute says {num_samples}, actions have {length} steps",
                file=path, episode=name, key=action_key,
            )  # fmt: skip
        for key in [*state_keys, *image_keys]:
            obs_key = f"obs/{key}"
            observation = _child(demo, obs_key, path, name)
            if observation.shape[:1] != (length,):
                raise DataError(
                    f"mismatched lengths: {observation.shape[0] if observation.ndim else 0} steps, "
                    f"but {action_key} has {length}",
                    file=path, episode=name, key=obs_key,
                )  # fmt: skip
            if key in image_keys:
                if observation.dtype != np.uint8 or observation.ndim != 4 or observation.shape[-1] not in (1, 3):
                    raise DataError(
                        "expected uint8 images (T, H, W, C) with C = 1 or 3, "
                        f"got {observation.dtype} {observation.shape}",
                        file=path, episode=name, key=obs_key,
                    )  # fmt: skip
                shape: Any = tuple(observation.shape[1:])
                known: dict[str, Any] = image_shapes
            else:
                if observation.ndim > 2:
                    raise DataError(
                        f"expected low-dimensional numbers (T, D), got {observation.dtype} {observation.shape}"
                        + (" (list it in image_keys if it is an image)" if observation.ndim == 4 else ""),
                        file=path, episode=name, key=obs_key,
                    )  # fmt: skip
                check_numbers(observation, path, name, obs_key)
                shape = _step_shape(observation)
                known = state_shapes
            if key not in known:
                known[key] = shape
            elif known[key] != shape:
                raise DataError(
                    f"shape {shape} differs from {known[key]} in the first demo", file=path, episode=name, key=obs_key
                )
        episodes[name] = length
    assert action_shape is not None
    task, task_options, fps = read_task_attributes(file, path)
    return HDF5Layout(
        path=path,
        episodes=episodes,
        state_shapes=state_shapes,
        image_shapes=image_shapes,
        action_shape=action_shape,
        filters=_read_filters(file, path, set(names)),
        task=task,
        task_options=task_options,
        fps=fps,
    )


def _read_low_dim(file: h5py.File, path: Path, episode: str, key: str, finite: bool = True) -> np.ndarray:
    with hdf5_errors(path, episode, key):
        data = np.asarray(file["data"][episode][key][()], dtype=np.float32)
    data = data.reshape(data.shape[0], -1) if data.ndim == 1 else data
    if finite and not np.isfinite(data).all():
        bad = np.flatnonzero(~np.isfinite(data).reshape(len(data), -1).all(axis=1))
        raise DataError(
            f"{len(bad)} step(s) hold NaN or Inf values (first at step {int(bad[0])})",
            file=path,
            episode=episode,
            key=key,
        )
    return data


def warn_constant(path: Path, key: str, values: np.ndarray) -> None:
    """Warn when ``values`` (N, ...) never change: such a feature carries no information (it normalizes to 0)."""
    if len(values) > 1 and bool((values == values[:1]).all()):
        warnings.warn(
            f"{path}, key {key!r}: constant over the training split ({len(values)} steps, every value "
            f"{np.unique(values.reshape(-1))[:4].tolist()}): it carries no information (is this the right key?)",
            DataWarning,
            stacklevel=3,
        )


class H5Handle:
    """A read-only h5py file opened lazily in each process (DataLoader workers reopen it; it pickles as a path)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def get(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_file": None, "_pid": None}


class HDF5FeatureReader:
    """Reads each window from the file (robomimic-style per-sample reads), for features not cached in RAM."""

    def __init__(
        self,
        handle: H5Handle,
        index: EpisodeIndex,
        episodes: Sequence[str],
        dataset: str,
        convert: Callable[[torch.Tensor], torch.Tensor],
    ) -> None:
        self.handle = handle
        self.index = index
        self.episodes = list(episodes)
        self.dataset = dataset
        self.convert = convert

    def read(self, frames: np.ndarray) -> torch.Tensor:
        file = self.handle.get()
        episode = self.index.frame_episode[frames[:, 0]]
        local = frames - self.index.starts[episode][:, None]
        rows = []
        for row, e in zip(local, episode.tolist(), strict=True):
            low, high = int(row.min()), int(row.max())
            with hdf5_errors(self.handle.path, self.episodes[e], self.dataset):
                chunk = file["data"][self.episodes[e]][self.dataset][low : high + 1]
            rows.append(chunk[row - low])
        return self.convert(torch.from_numpy(np.stack(rows)))


def _low_dim_converter(
    stats: dict[str, dict[str, torch.Tensor]], key: str, mode: str
) -> Callable[[torch.Tensor], torch.Tensor]:
    def convert(values: torch.Tensor) -> torch.Tensor:
        values = values.float()
        if values.ndim == 2:  # (B, W) from a 1-D dataset
            values = values.unsqueeze(-1)
        return normalize(stats, key, values, mode)

    return convert


def write_generated(path: Path, generate: DemoGenerationConfig) -> None:
    """Write the synthetic dataset described by ``generate`` to ``path`` (atomically)."""
    from vfp_il_components.data.writers import write_hdf5_dataset
    from vfp_il_components.tasks import get_task

    if generate.task.startswith("metaworld/"):
        from vfp_il_components.envs.metaworld_demos import write_metaworld_demos

        write_metaworld_demos(
            generate.task, path, episodes=generate.episodes, seed=generate.seed, val_ratio=generate.val_ratio,
            options=generate.task_options, images=generate.images,
        )  # fmt: skip
        return
    task = get_task(generate.task, **generate.task_options)
    episodes = task.generate_demos(
        generate.episodes, generate.seed, images=generate.images, image_size=generate.image_size
    )
    write_hdf5_dataset(episodes, path, task=task, val_ratio=generate.val_ratio, seed=generate.seed)


class HDF5DataModule(WindowDataModule):
    """Windows over an episodic HDF5 file; see ``HDF5DataConfig`` for the options."""

    config: HDF5DataConfig

    def __init__(self, config: HDF5DataConfig) -> None:
        super().__init__(config)
        self.path = Path(config.path).expanduser()

    def _split(self, layout: HDF5Layout) -> tuple[list[str], list[str]]:
        config, names = self.config, list(layout.episodes)
        for option in ("train_filter", "val_filter"):
            name = getattr(config, option)
            if name is not None and name not in layout.filters:
                available = ", ".join(sorted(layout.filters)) or "none"
                raise DataError(
                    f"{option} {name!r}: no such filter (available: {available})", file=self.path, key=f"mask/{name}"
                )
        if config.train_filter is None and config.val_filter is None:
            return split_by_ratio(names, config.val_ratio, config.split_seed)
        val = layout.filters[config.val_filter] if config.val_filter is not None else []
        if config.train_filter is not None:
            train = layout.filters[config.train_filter]
        else:
            train = [n for n in names if n not in set(val)]
        if not train:
            raise DataError("the training split holds no demos", file=self.path, key=f"mask/{config.train_filter}")
        return sorted(train, key=demo_sort_key), sorted(val, key=demo_sort_key)

    def _setup(self) -> None:
        config = self.config
        if not self.path.exists() and config.generate is not None:
            write_generated(self.path, config.generate)
        with open_hdf5(self.path) as file, hdf5_errors(self.path):
            layout = read_layout(file, self.path, config.state_keys, config.image_keys, config.action_key)
            longest = max(layout.episodes, key=layout.episodes.__getitem__)
            if config.horizon > layout.episodes[longest]:
                raise DataError(
                    f"horizon {config.horizon} is longer than every episode (the longest, {longest}, has "
                    f"{layout.episodes[longest]} steps); lower data.horizon",
                    file=self.path,
                )
            train_names, val_names = self._split(layout)
            low_dim = {f"obs/{key}": f"observation.{key}" for key in config.state_keys}
            low_dim[config.action_key] = ACTION
            train_arrays = self._read_split(file, train_names, low_dim)
            val_arrays = self._read_split(file, val_names, low_dim) if val_names else {}
            for key in low_dim:
                warn_constant(self.path, key, train_arrays[key])
            self._stats = {name: compute_stats(torch.from_numpy(train_arrays[key])) for key, name in low_dim.items()}
            images_in_ram = config.cache == "all"
            train_images = self._read_images(file, train_names) if images_in_ram else {}
            val_images = self._read_images(file, val_names) if images_in_ram and val_names else {}
        handle = H5Handle(self.path)
        image_batch_keys = [f"observation.{k}" for k in config.image_keys]
        augment = config.augmentation.enabled and bool(config.image_keys)
        augmentation = ImageAugmentation(config.augmentation, image_batch_keys) if augment else None
        self._prepare = PrepareBatch(image_batch_keys, augmentation)
        seed = config.augmentation.seed if augment else None
        self._train = self._dataset(handle, layout, train_names, train_arrays, train_images, low_dim, seed)
        self._val = self._dataset(handle, layout, val_names, val_arrays, val_images, low_dim) if val_names else None
        self._info = self._make_info(layout, train_names, val_names)

    def _read_split(self, file: h5py.File, names: Sequence[str], low_dim: dict[str, str]) -> dict[str, np.ndarray]:
        return {
            key: np.concatenate([_read_low_dim(file, self.path, name, key) for name in names], axis=0)
            for key in low_dim
        }

    def _read_images(self, file: h5py.File, names: Sequence[str]) -> dict[str, torch.Tensor]:
        images = {}
        for key in self.config.image_keys:
            frames = []
            for name in names:
                with hdf5_errors(self.path, name, f"obs/{key}"):
                    frames.append(file["data"][name]["obs"][key][()])
            images[key] = torch.from_numpy(np.concatenate(frames, axis=0))
        return images

    def _mode(self, batch_key: str) -> str:
        return self.config.action_normalization if batch_key == ACTION else self.config.state_normalization

    def _dataset(
        self,
        handle: H5Handle,
        layout: HDF5Layout,
        names: Sequence[str],
        arrays: dict[str, np.ndarray],
        images: dict[str, torch.Tensor],
        low_dim: dict[str, str],
        augment_seed: int | None = None,
    ) -> WindowDataset:
        config = self.config
        index = EpisodeIndex([layout.episodes[name] for name in names])
        readers: dict[str, FeatureReader] = {}
        for key, batch_key in low_dim.items():
            mode = self._mode(batch_key)
            if config.cache == "none":
                readers[batch_key] = HDF5FeatureReader(
                    handle, index, names, key, _low_dim_converter(self._stats, batch_key, mode)
                )
            else:
                frames = normalize(self._stats, batch_key, torch.from_numpy(arrays[key]), mode).contiguous()
                readers[batch_key] = TensorReader(frames)
        for key in config.image_keys:
            if key in images:
                readers[f"observation.{key}"] = ImageTensorReader(images[key])
            else:
                readers[f"observation.{key}"] = HDF5FeatureReader(handle, index, names, f"obs/{key}", uint8_hwc_to_chw)
        action = readers.pop(ACTION)
        return WindowDataset(
            index, readers, action, history=config.history, horizon=config.horizon, augment_seed=augment_seed
        )

    def _make_info(self, layout: HDF5Layout, train: Sequence[str], val: Sequence[str]) -> DataInfo:
        features: dict[str, FeatureInfo] = {}
        for key, shape in layout.state_shapes.items():
            features[f"observation.{key}"] = FeatureInfo(f"observation.{key}", shape, "state")
        for key, (height, width, channels) in layout.image_shapes.items():
            features[f"observation.{key}"] = FeatureInfo(f"observation.{key}", (channels, height, width), "image")
        features[ACTION] = FeatureInfo(ACTION, layout.action_shape, "action")
        normalization = {key: self._mode(key) for key in features if features[key].role != "image"}
        return DataInfo(
            features=features,
            history=self.config.history,
            horizon=self.config.horizon,
            task=layout.task,
            task_options=layout.task_options,
            normalization=normalization,
            fps=layout.fps,
            train_episodes=len(train),
            val_episodes=len(val),
            source={"format": "hdf5", "path": str(self.path)},
        )


def build_hdf5_data(config: HDF5DataConfig) -> HDF5DataModule:
    """Target of the ``hdf5`` dataloader component."""
    return HDF5DataModule(config)
