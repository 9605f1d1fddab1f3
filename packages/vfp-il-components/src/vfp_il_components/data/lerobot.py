"""The ``lerobot`` dataloader: LeRobot datasets through the real ``lerobot`` library (optional extra).

Importing this module does not import lerobot; building the data module does, and says what to install
when it is missing. Two read paths:

- fast (``fast_low_dim: true``, the default): low-dimensional columns are read once from the dataset's
  parquet data into tensors, and windows are built by vectorized index arithmetic (``WindowDataset``);
  image and video features come from the frame cache (``frame_cache.py``: decoded once into a uint8
  memory map, then gathered), or, with ``frame_cache: false`` or an unwritable cache folder, through
  ``LeRobotDataset.__getitem__`` (its decoding) with ``delta_timestamps`` for those features only;
- plain: ``LeRobotDataset`` with ``delta_timestamps`` for every feature, one sample at a time.

All follow LeRobot's window convention (clamped indices, ``<key>_is_pad`` masks), so they return the
same samples. Images leave the fast path as uint8 and become float in ``prepare_batch`` (see module.py).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vfp.protocols import Batch, DataInfo, FeatureInfo
from vfp_il_components.data.augment import ImageAugmentation
from vfp_il_components.data.errors import DataError
from vfp_il_components.data.frame_cache import (
    FrameCacheUnavailable,
    build_lerobot_frames,
    ensure_entry,
    lerobot_frame_entry,
    warn_fallback,
)
from vfp_il_components.data.hdf5_checks import checked_task_options
from vfp_il_components.data.inspect import read_json_object
from vfp_il_components.data.module import WindowDataModule, split_by_ratio
from vfp_il_components.data.normalization import compute_stats, normalize
from vfp_il_components.data.specs import LEROBOT_INSTALL_HINT, LeRobotDataConfig
from vfp_il_components.data.windows import EpisodeIndex, FeatureReader, PrepareBatch, TensorReader, WindowDataset
from vfp_il_components.tasks import TASK_NAMES

__all__ = [
    "LeRobotDataModule",
    "LeRobotWindowDataset",
    "build_lerobot_data",
    "delta_timestamps",
    "import_lerobot",
    "lerobot_window_dataset",
    "resolve_video_backend",
]

ACTION = "action"
IMAGE_DTYPES = ("image", "video")
LOW_DIM_DTYPES = ("float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")


def import_lerobot() -> tuple[Any, Any]:
    """``(LeRobotDataset, LeRobotDatasetMetadata)``, or an ImportError saying what to install."""
    try:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata
    except ImportError as exc:
        raise ImportError(
            f"the lerobot dataloader needs the lerobot library ({exc}); install it with: {LEROBOT_INSTALL_HINT} "
            "(lerobot 0.4 needs torch<2.11, so use a separate environment if yours has a newer torch)"
        ) from exc
    return LeRobotDataset, LeRobotDatasetMetadata


def resolve_video_backend(backend: str) -> str:
    """``auto``: torchcodec when its FFmpeg libraries load, else ``pyav``."""
    if backend != "auto":
        return backend
    if importlib.util.find_spec("torchcodec") is None:
        return "pyav"
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401  # loads the FFmpeg libraries
    except Exception:
        return "pyav"
    return "torchcodec"


def delta_timestamps(
    observation_keys: Sequence[str], action_key: str, fps: int, history: int, horizon: int
) -> dict[str, list[float]]:
    """LeRobot ``delta_timestamps``: ``history`` observation steps ending now, ``horizon`` actions from now."""
    observation = [(i - history + 1) / fps for i in range(history)]
    deltas = {key: list(observation) for key in observation_keys}
    deltas[action_key] = [i / fps for i in range(horizon)]
    return deltas


def _dataset_root(config: LeRobotDataConfig) -> Path:
    if config.root is not None:
        return Path(config.root).expanduser()
    from lerobot.utils.constants import HF_LEROBOT_HOME

    return Path(HF_LEROBOT_HOME) / config.repo_id


def _image_shape(feature: dict[str, Any]) -> tuple[int, int, int]:
    """(C, H, W) of an image/video feature, from its stored shape and names (LeRobot's convention)."""
    shape = tuple(int(s) for s in feature["shape"])
    names = feature.get("names") or []
    if len(names) == 3 and names[0] in ("channel", "channels"):
        return (shape[0], shape[1], shape[2])
    return (shape[2], shape[0], shape[1])


class _ItemFetcher:
    """Reads whole ``LeRobotDataset`` items for the windows' current frames (memoizes the last batch, so
    several image keys share one decode)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self._last: tuple[bytes, list[dict[str, Any]]] | None = None

    def items(self, samples: np.ndarray) -> list[dict[str, Any]]:
        key = samples.tobytes()
        if self._last is None or self._last[0] != key:
            self._last = (key, [self.dataset[int(i)] for i in samples])
        return self._last[1]


class LeRobotImageReader:
    """An image or video feature, read through ``LeRobotDataset.__getitem__`` and returned as uint8
    (B, T, C, H, W) like the frame cache's (LeRobot's float frames are k/255 exactly, so this is lossless).

    Windows end at their sample's frame, so ``frames[:, -1]`` are the samples to read.
    """

    def __init__(self, fetcher: _ItemFetcher, key: str) -> None:
        self.fetcher = fetcher
        self.key = key

    def read(self, frames: np.ndarray) -> torch.Tensor:
        items = self.fetcher.items(frames[:, -1])
        return torch.stack([item[self.key] for item in items]).mul(255.0).round_().to(torch.uint8)


class LeRobotWindowDataset(Dataset[dict[str, torch.Tensor]]):
    """``LeRobotDataset`` with ``delta_timestamps`` for every feature, reduced to the batch keys and
    normalized; one sample per ``__getitem__`` (the plain path, and the benchmark's baseline)."""

    def __init__(
        self,
        dataset: Any,
        observation_keys: Sequence[str],
        action_key: str,
        normalizers: dict[str, Callable[[torch.Tensor], torch.Tensor]],
        transform: Callable[[Batch], Batch] | None = None,
    ) -> None:
        self.dataset = dataset
        self.observation_keys = list(observation_keys)
        self.action_key = action_key
        self.normalizers = normalizers
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.dataset[index]
        sample: dict[str, torch.Tensor] = {}
        for key in self.observation_keys:
            sample[key] = self.normalizers.get(key, _identity)(item[key])
            sample[f"{key}_is_pad"] = item[f"{key}_is_pad"]
        sample[ACTION] = self.normalizers.get(ACTION, _identity)(item[self.action_key])
        sample[f"{ACTION}_is_pad"] = item[f"{self.action_key}_is_pad"]
        if self.transform is not None:
            sample = {key: value[0] for key, value in self.transform({k: v[None] for k, v in sample.items()}).items()}
        return sample


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


class LeRobotDataModule(WindowDataModule):
    """Windows over a local (or, with ``offline: false``, downloaded) LeRobot dataset."""

    config: LeRobotDataConfig

    def __init__(self, config: LeRobotDataConfig) -> None:
        import_lerobot()  # fail at build time with the install hint, before any work
        super().__init__(config)

    def _setup(self) -> None:
        config = self.config
        lerobot_dataset, lerobot_metadata = import_lerobot()
        root = _dataset_root(config)
        if config.offline and not (root / "meta" / "info.json").is_file():
            raise DataError(
                f"no LeRobot dataset {config.repo_id!r} here (meta/info.json missing); offline mode never "
                "downloads: set data.root to the dataset folder, or data.offline: false to fetch it from the hub",
                file=root,
            )
        if config.offline:
            read_json_object(root / "meta" / "info.json")  # not JSON, not UTF-8: a DataError, not lerobot's traceback
        meta = lerobot_metadata(config.repo_id, root=root, revision=config.revision)
        self._check_features(meta.features, root)
        episodes = self._episodes(meta, root)
        lengths = {int(e): int(meta.episodes[int(e)]["length"]) for e in episodes}
        longest = max(lengths, key=lengths.__getitem__)
        if config.horizon > lengths[longest]:
            raise DataError(
                f"horizon {config.horizon} is longer than every episode (the longest, episode {longest}, has "
                f"{lengths[longest]} steps); lower data.horizon",
                file=root,
            )
        train, val = self._split(episodes)
        if config.offline:
            self._check_local_files(meta, root, episodes)
        backend = resolve_video_backend(config.video_backend)
        self._stats = self._read_stats(meta)
        self._meta = meta
        augment = config.augmentation.enabled and bool(config.image_keys)
        augmentation = ImageAugmentation(config.augmentation, config.image_keys) if augment else None
        self._prepare = PrepareBatch(config.image_keys, augmentation if config.fast_low_dim else None)
        make = self._fast_dataset if config.fast_low_dim else self._plain_dataset
        self._train = make(lerobot_dataset, root, train, meta.fps, backend, training=True)
        self._val = make(lerobot_dataset, root, val, meta.fps, backend, training=False) if val else None
        self._info = self._make_info(meta, root, train, val)

    # -- validation ---------------------------------------------------------------------------------

    def _check_features(self, features: dict[str, Any], root: Path) -> None:
        config = self.config
        available = ", ".join(sorted(features))
        for key in [*config.state_keys, config.action_key]:
            if key not in features:
                raise DataError(f"no such feature (available: {available})", file=root, key=key)
            if features[key]["dtype"] not in LOW_DIM_DTYPES:
                raise DataError(
                    f"expected a low-dimensional feature, got dtype {features[key]['dtype']}"
                    + (" (list it in image_keys)" if features[key]["dtype"] in IMAGE_DTYPES else ""),
                    file=root,
                    key=key,
                )
        for key in config.image_keys:
            if key not in features:
                raise DataError(f"no such feature (available: {available})", file=root, key=key)
            if features[key]["dtype"] not in IMAGE_DTYPES:
                raise DataError(
                    f"expected an image or video feature, got dtype {features[key]['dtype']}", file=root, key=key
                )

    def _episodes(self, meta: Any, root: Path) -> list[int]:
        total = int(meta.total_episodes)
        if total == 0:
            raise DataError("the dataset holds no episodes", file=root)
        chosen = list(range(total)) if self.config.episodes is None else list(self.config.episodes)
        for option, values in (("episodes", chosen), ("val_episodes", self.config.val_episodes or [])):
            unknown = [e for e in values if not 0 <= e < total]
            if unknown:
                raise DataError(f"data.{option}: no episodes {unknown} (the dataset has 0..{total - 1})", file=root)
        if len(set(chosen)) != len(chosen):
            raise DataError("data.episodes lists an episode twice", file=root)
        return sorted(chosen)

    def _split(self, episodes: list[int]) -> tuple[list[int], list[int]]:
        config = self.config
        if config.val_episodes is None:
            return split_by_ratio(episodes, config.val_ratio, config.split_seed)
        val = sorted(set(config.val_episodes))
        train = [e for e in episodes if e not in set(val)]
        if not train:
            raise DataError("no training episodes left after removing data.val_episodes")
        return train, val

    def _check_local_files(self, meta: Any, root: Path, episodes: list[int]) -> None:
        """Offline: every file the episodes need must exist (LeRobotDataset would download missing ones)."""
        needed = {meta.get_data_file_path(e) for e in episodes}
        for key in self.config.image_keys:
            if meta.features[key]["dtype"] == "video":
                needed |= {meta.get_video_file_path(e, key) for e in episodes}
        missing = sorted(str(p) for p in needed if not (root / p).is_file())
        if missing:
            raise DataError(f"offline and missing files: {', '.join(missing[:5])}", file=root)

    # -- statistics ---------------------------------------------------------------------------------

    def _read_stats(self, meta: Any) -> dict[str, dict[str, torch.Tensor]]:
        """mean/std/min/max from meta/stats.json, for the low-dimensional features and the action."""
        stats: dict[str, dict[str, torch.Tensor]] = {}
        recorded = meta.stats or {}
        for key in [*self.config.state_keys, self.config.action_key]:
            name = ACTION if key == self.config.action_key else key
            values = recorded.get(key, {})
            if all(s in values for s in ("mean", "std", "min", "max")):
                stats[name] = {
                    s: torch.as_tensor(np.asarray(values[s]), dtype=torch.float32)
                    for s in ("mean", "std", "min", "max")
                }
        return stats

    def _mode(self, name: str) -> str:
        return self.config.action_normalization if name == ACTION else self.config.state_normalization

    def _ensure_stats(self, name: str, values: torch.Tensor) -> None:
        if name not in self._stats:  # stats.json lacked the feature: compute from the training split
            self._stats[name] = compute_stats(values)

    # -- datasets -----------------------------------------------------------------------------------

    def _transform(self, training: bool) -> Callable[[Batch], Batch] | None:
        """Per-sample augmentation of the plain path (the fast path augments per batch in prepare_batch)."""
        if training and self.config.augmentation.enabled and self.config.image_keys:
            return ImageAugmentation(self.config.augmentation, self.config.image_keys)
        return None

    def _cached_images(self, root: Path, positions: np.ndarray) -> dict[str, FeatureReader] | None:
        """Frame-cache readers of the image features (built on first use), or None to fall back."""
        config, meta = self.config, self._meta
        cache_dir = Path(config.frame_cache_dir).expanduser() if config.frame_cache_dir else None
        readers: dict[str, FeatureReader] = {}
        for key in config.image_keys:
            entry = lerobot_frame_entry(
                root,
                key,
                num_frames=int(meta.total_frames),
                shape=_image_shape(meta.features[key]),
                cache_dir=cache_dir,
            )
            try:
                entry = ensure_entry(
                    entry, build_lerobot_frames(root, meta, key), description=f"{config.repo_id} {key}"
                )
            except FrameCacheUnavailable as exc:
                warn_fallback(str(exc))
                return None
            readers[key] = entry.reader(positions)
        return readers

    def _fast_dataset(
        self, lerobot_dataset: Any, root: Path, episodes: list[int], fps: int, backend: str, *, training: bool
    ) -> WindowDataset:
        config = self.config
        base = lerobot_dataset(
            config.repo_id, root=root, episodes=episodes, video_backend=backend, revision=config.revision
        )
        columns = [*config.state_keys, config.action_key, "episode_index", "index"]
        table = base.hf_dataset.with_format("numpy", columns=columns)[:]
        images = (
            self._cached_images(root, np.asarray(table["index"])) if config.frame_cache and config.image_keys else None
        )
        if images is None and config.image_keys:  # decode per sample through LeRobotDataset
            deltas = delta_timestamps(config.image_keys, config.action_key, fps, config.history, 1)
            deltas.pop(config.action_key)
            base = lerobot_dataset(
                config.repo_id, root=root, episodes=episodes, delta_timestamps=deltas, video_backend=backend,
                revision=config.revision,
            )  # fmt: skip
        index = EpisodeIndex(_episode_runs(table["episode_index"], root))
        readers: dict[str, FeatureReader] = {}
        for key in [*config.state_keys, config.action_key]:
            name = ACTION if key == config.action_key else key
            values = torch.from_numpy(np.asarray(table[key], dtype=np.float32).reshape(len(table[key]), -1))
            shape = tuple(int(s) for s in base.meta.features[key]["shape"])
            values = values.reshape(len(values), *shape) if shape else values
            self._ensure_stats(name, values)
            readers[name] = TensorReader(normalize(self._stats, name, values, self._mode(name)).contiguous())
        if images is not None:
            readers.update(images)
        elif config.image_keys:
            fetcher = _ItemFetcher(base)
            for key in config.image_keys:
                readers[key] = LeRobotImageReader(fetcher, key)
        action = readers.pop(ACTION)
        augment = training and config.augmentation.enabled and bool(config.image_keys)
        return WindowDataset(
            index, readers, action, history=config.history, horizon=config.horizon,
            augment_seed=config.augmentation.seed if augment else None,
        )  # fmt: skip

    def _plain_dataset(
        self, lerobot_dataset: Any, root: Path, episodes: list[int], fps: int, backend: str, *, training: bool
    ) -> LeRobotWindowDataset:
        config = self.config
        observation_keys = [*config.state_keys, *config.image_keys]
        deltas = delta_timestamps(observation_keys, config.action_key, fps, config.history, config.horizon)
        base = lerobot_dataset(
            config.repo_id, root=root, episodes=episodes, delta_timestamps=deltas, video_backend=backend,
            revision=config.revision,
        )  # fmt: skip
        normalizers: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
        for key in [*config.state_keys, config.action_key]:
            name = ACTION if key == config.action_key else key
            if name not in self._stats:
                column = base.hf_dataset.with_format("numpy", columns=[key])[:][key]
                self._ensure_stats(name, torch.from_numpy(np.asarray(column, dtype=np.float32)))
            normalizers[name] = _normalizer(self._stats, name, self._mode(name))
        return LeRobotWindowDataset(base, observation_keys, config.action_key, normalizers, self._transform(training))

    def _make_info(self, meta: Any, root: Path, train: list[int], val: list[int]) -> DataInfo:
        config = self.config
        features: dict[str, FeatureInfo] = {}
        for key in config.state_keys:
            features[key] = FeatureInfo(key, tuple(int(s) for s in meta.features[key]["shape"]), "state")
        for key in config.image_keys:
            features[key] = FeatureInfo(key, _image_shape(meta.features[key]), "image")
        features[ACTION] = FeatureInfo(
            ACTION, tuple(int(s) for s in meta.features[config.action_key]["shape"]), "action"
        )
        info_file = root / "meta" / "info.json"
        info = read_json_object(info_file)
        task = config.task or info.get("vfp_task")
        if task is not None and task not in TASK_NAMES:
            raise DataError(f"unknown task {task!r}; available tasks: {', '.join(TASK_NAMES)}", file=info_file,
                            key="vfp_task")  # fmt: skip
        options: dict[str, Any] = {}
        if task is not None and config.task in (None, info.get("vfp_task")):
            options = checked_task_options(task, info.get("vfp_task_options", {}), info_file, "vfp_task_options")
        return DataInfo(
            features=features,
            history=config.history,
            horizon=config.horizon,
            task=task,
            task_options=options,
            normalization={key: self._mode(key) for key, f in features.items() if f.role != "image"},
            fps=int(meta.fps),
            train_episodes=len(train),
            val_episodes=len(val),
            source={"format": "lerobot", "repo_id": config.repo_id, "root": str(root)},
        )


def _normalizer(
    stats: dict[str, dict[str, torch.Tensor]], name: str, mode: str
) -> Callable[[torch.Tensor], torch.Tensor]:
    def apply(x: torch.Tensor) -> torch.Tensor:
        return normalize(stats, name, x.float(), mode)

    return apply


def _episode_runs(episode_index: np.ndarray, root: Path) -> list[int]:
    """Lengths of the contiguous runs of episodes in row order (each episode must be one run)."""
    values = np.asarray(episode_index)
    if len(values) == 0:
        raise DataError("the selected episodes hold no frames", file=root)
    boundaries = np.flatnonzero(np.diff(values)) + 1
    starts = np.concatenate([[0], boundaries])
    lengths = np.diff(np.concatenate([starts, [len(values)]]))
    if len(set(values[starts].tolist())) != len(starts):
        raise DataError("frames of an episode are not contiguous in the data files", file=root)
    return [int(n) for n in lengths]


def lerobot_window_dataset(config: LeRobotDataConfig, root: str | Path | None = None) -> LeRobotWindowDataset:
    """The plain path (``LeRobotDataset`` + ``delta_timestamps``) for ``config``, on all its episodes."""
    plain = config.model_copy(update={"fast_low_dim": False, "val_ratio": 0.0, "val_episodes": None})
    if root is not None:
        plain = plain.model_copy(update={"root": str(root)})
    module = LeRobotDataModule(plain)
    module.setup()
    dataset = module.train_dataset
    assert isinstance(dataset, LeRobotWindowDataset)
    return dataset


def build_lerobot_data(config: LeRobotDataConfig) -> LeRobotDataModule:
    """Target of the ``lerobot`` dataloader component."""
    return LeRobotDataModule(config)
