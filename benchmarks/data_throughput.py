"""Data-loading throughput: samples/s for batches of 256 windows (16-step action chunk, 2-step history).

All loaders read the same synthetic dataset (``avoid_obstacle`` demos) in the same run, through
``torch.utils.data.DataLoader`` (shuffled, ``num_workers=0``), and must return identical batches
(checked on a fixed set of indices before timing).

HDF5, low-dimensional and with 84x84 images:
- ``vfp hdf5``: our loader (frames held once, windows by vectorized index arithmetic in ``__getitems__``);
- ``robomimic-style per-sample h5py``: robomimic's ``SequenceDataset`` read path without cache: every
  sample slices each key from the file, pads the sequence, then the default collate stacks the samples;
- ``robomimic-style low_dim cache``: the same with low-dimensional data in RAM (still per sample);
- ``robomimic-style all-windows cache``: robomimic's fastest mode, every sample's window precomputed in
  RAM (``hdf5_cache_mode="all"``), default collate;
- ``(reference) all windows as tensors``: every window materialized in one tensor per key and gathered.

LeRobot (only where the ``lerobot`` library is importable, e.g. in the `nox -s lerobot` venv):
- ``vfp lerobot``: our loader's fast low-dim path against ``LeRobotDataset`` with ``delta_timestamps``
  and a ``DataLoader``.
- camera datasets (issue 15): a LeRobot dataset with ``--cameras`` cameras of ``--camera-size`` pixels
  stored as PNG images and one stored as mp4 videos (``--camera-episodes`` x ``--camera-length`` frames),
  batch 64, history 2: vfp with the frame cache (after its one-time build, timed separately and compared
  with one pass of ``LeRobotDataset`` over the data, estimated from its measured rate), vfp's uint8 loader
  output alone (what the engine copies to the device before ``prepare_batch``), the fallback without the
  cache (``frame_cache: false``: images through ``LeRobotDataset.__getitem__``), and
  ``LeRobotDataset`` + ``DataLoader`` with 0 and 2 workers.

Rows marked "uint8 batches" time the loader with ``transfer_collate_fn``: images leave it as uint8 and become
float (and augmented) in ``prepare_batch`` on the run's device, after the copy; the other vfp rows include
that conversion on the CPU (``collate_fn``), which then dominates their time.

Targets (issue 4), on low-dimensional data: at least 20x the per-sample readers, at least 50x
``LeRobotDataset`` + ``DataLoader``, and at least the all-windows cache's speed while holding each frame
once. "RAM" is the bytes of data each loader holds (tensors and arrays; Python object overhead excluded).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from vfp_il_components.data.hdf5 import HDF5DataModule
from vfp_il_components.data.normalization import normalize
from vfp_il_components.data.specs import HDF5DataConfig
from vfp_il_components.data.windows import WindowDataset
from vfp_il_components.data.writers import write_hdf5_dataset
from vfp_il_components.tasks import get_task

BATCH = 256
HORIZON = 16
HISTORY = 2


# --------------------------------------------------------------------------------------------------
# Baselines in robomimic's style
# --------------------------------------------------------------------------------------------------


class RobomimicStyleDataset(Dataset[dict[str, torch.Tensor]]):
    """robomimic ``SequenceDataset.get_item``: per-sample slices of each key, padded by repetition.

    ``low_dim_cache`` holds the low-dimensional keys in RAM per demo (``hdf5_cache_mode="low_dim"``).
    """

    def __init__(
        self,
        path: Path,
        demos: Sequence[str],
        state_keys: Sequence[str],
        image_keys: Sequence[str],
        stats: dict[str, dict[str, torch.Tensor]],
        modes: dict[str, str],
        low_dim_cache: bool,
    ) -> None:
        self.path = path
        self.demos = list(demos)
        self.state_keys = list(state_keys)
        self.image_keys = list(image_keys)
        self.stats = stats
        self.modes = modes
        self._file: h5py.File | None = None
        with h5py.File(path, "r") as file:
            self.lengths = [int(file[f"data/{d}/actions"].shape[0]) for d in self.demos]
            self.cache: dict[str, dict[str, np.ndarray]] = {}
            if low_dim_cache:
                for demo in self.demos:
                    keys = [f"obs/{k}" for k in self.state_keys] + ["actions"]
                    self.cache[demo] = {k: file[f"data/{demo}/{k}"][()] for k in keys}
        self.index_to_demo = np.repeat(np.arange(len(self.demos)), self.lengths)
        self.demo_start = np.cumsum(self.lengths) - np.asarray(self.lengths)

    @property
    def file(self) -> h5py.File:
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file

    def __len__(self) -> int:
        return int(sum(self.lengths))

    def _dataset(self, demo: str, key: str) -> Any:
        if demo in self.cache and key in self.cache[demo]:
            return self.cache[demo][key]
        return self.file[f"data/{demo}/{key}"]

    def _sequence(
        self, demo: str, key: str, index: int, before: int, length: int, total: int
    ) -> tuple[np.ndarray, np.ndarray]:
        begin = max(0, index - before)
        end = min(total, index + length)
        begin_pad = max(0, before - index)
        end_pad = max(0, index + length - total)
        data = self._dataset(demo, key)[begin:end]
        parts = [np.repeat(data[:1], begin_pad, axis=0), data, np.repeat(data[-1:], end_pad, axis=0)]
        pad = np.array([True] * begin_pad + [False] * (end - begin) + [True] * end_pad)
        return np.concatenate(parts, axis=0), pad

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        demo_id = int(self.index_to_demo[index])
        demo, total = self.demos[demo_id], self.lengths[demo_id]
        in_demo = index - int(self.demo_start[demo_id])
        item: dict[str, torch.Tensor] = {}
        for key in self.state_keys:
            values, pad = self._sequence(demo, f"obs/{key}", in_demo, HISTORY - 1, 1, total)
            name = f"observation.{key}"
            item[name] = normalize(self.stats, name, torch.from_numpy(values.astype(np.float32)), self.modes[name])
            item[f"{name}_is_pad"] = torch.from_numpy(pad)
        for key in self.image_keys:
            values, pad = self._sequence(demo, f"obs/{key}", in_demo, HISTORY - 1, 1, total)
            name = f"observation.{key}"
            item[name] = torch.from_numpy(values).permute(0, 3, 1, 2).float().div(255.0)
            item[f"{name}_is_pad"] = torch.from_numpy(pad)
        actions, pad = self._sequence(demo, "actions", in_demo, 0, HORIZON, total)
        item["action"] = normalize(
            self.stats, "action", torch.from_numpy(actions.astype(np.float32)), self.modes["action"]
        )
        item["action_is_pad"] = torch.from_numpy(pad)
        return item

    def data_bytes(self) -> int:
        return sum(a.nbytes for demo in self.cache.values() for a in demo.values())


class AllWindowsCache(Dataset[dict[str, torch.Tensor]]):
    """robomimic's ``hdf5_cache_mode="all"``: every sample's processed window kept in RAM."""

    def __init__(self, source: Dataset[dict[str, torch.Tensor]], size: int) -> None:
        self.items = [source[i] for i in range(size)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.items[index]

    def data_bytes(self) -> int:
        return sum(t.nbytes for item in self.items for t in item.values())


class AllWindowsTensors(Dataset[dict[str, torch.Tensor]]):
    """Every window stacked into one tensor per key; batches are a single gather (memory: T or H copies)."""

    def __init__(self, cache: AllWindowsCache) -> None:
        self.tensors = {key: torch.stack([item[key] for item in cache.items]).numpy() for key in cache.items[0]}
        self.size = len(cache)

    def __len__(self) -> int:
        return self.size

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        frames = np.asarray(indices)
        return {key: torch.from_numpy(np.take(array, frames, axis=0)) for key, array in self.tensors.items()}

    def data_bytes(self) -> int:
        return sum(array.nbytes for array in self.tensors.values())


# --------------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------------


@dataclass
class Row:
    group: str
    name: str
    samples_per_s: float
    ram_bytes: int | None
    identical: str


def batches_per_second(
    dataset: Dataset[Any],
    collate: Callable[[Any], Any],
    batches: int,
    seed: int = 0,
    *,
    batch_size: int = BATCH,
    workers: int = 0,
) -> float:
    """Samples/s over ``batches`` shuffled batches (after one warm-up batch, which also starts the workers)."""
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=True, collate_fn=collate, generator=generator, drop_last=True,
        num_workers=workers, persistent_workers=workers > 0,
    )  # fmt: skip
    iterator = iter(loader)
    next(iterator)
    count = 0
    start = time.perf_counter()
    for _ in range(batches):
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            batch = next(iterator)
        count += batch["action"].shape[0]
    return count / (time.perf_counter() - start)


def compare(reference: dict[str, torch.Tensor], other: dict[str, torch.Tensor]) -> str:
    """ "yes" when every key of ``reference`` is equal in ``other`` (bitwise), else the worst difference."""
    worst = 0.0
    for key, value in reference.items():
        if key not in other:
            return f"no ({key} missing)"
        if other[key].shape != value.shape:
            return f"no ({key} shape {tuple(other[key].shape)} != {tuple(value.shape)})"
        if not torch.equal(other[key], value):
            worst = max(worst, float((other[key].double() - value.double()).abs().max()))
    return "yes" if worst == 0.0 else f"no (max diff {worst:.3g})"


def probe_indices(size: int, seed: int = 1) -> list[int]:
    rng = np.random.default_rng(seed)
    return sorted({0, 1, size - 1, *rng.integers(0, size, 300).tolist()})


def tensor_bytes(readers: dict[str, Any]) -> int:
    total = 0
    for reader in readers.values():
        frames = getattr(reader, "frames", None)
        if isinstance(frames, torch.Tensor):
            total += frames.nbytes
    return total


def windows(module: HDF5DataModule) -> WindowDataset:
    dataset = module.train_dataset
    assert isinstance(dataset, WindowDataset)
    return dataset


def hdf5_rows(path: Path, images: bool, batches: int, slow_batches: int) -> list[Row]:
    group = "hdf5 images" if images else "hdf5 low-dim"
    image_keys = ["image"] if images else []
    rows: list[Row] = []
    modules = {}
    for cache in ("all", "low_dim") if images else ("low_dim",):
        config = HDF5DataConfig(
            type="hdf5", path=str(path), image_keys=image_keys, cache=cache, history=HISTORY, horizon=HORIZON,
            val_ratio=0.0, batch_size=BATCH,
        )  # fmt: skip
        module = HDF5DataModule(config)
        module.setup()
        modules[cache] = module
    ours = next(iter(modules.values()))
    dataset = windows(ours)
    stats = ours.normalization_stats()
    modes = ours.normalization_modes()
    indices = probe_indices(len(dataset))
    reference = ours.collate_fn(dataset.__getitems__(indices))
    with h5py.File(path, "r") as file:
        demos = sorted(file["data"].keys(), key=lambda n: int(n.split("_")[1]))

    for cache, module in modules.items():
        ds = windows(module)
        readers = {**ds.observations, "action": ds.action}
        identical = compare(reference, module.collate_fn(ds.__getitems__(indices)))
        rate = batches_per_second(ds, module.collate_fn, batches)
        label = f"vfp hdf5 (cache={cache})"
        rows.append(Row(group, label, rate, tensor_bytes(readers), identical))
        if images:
            identical = compare(reference, module.prepare_batch(module.transfer_collate_fn(ds.__getitems__(indices))))
            rate = batches_per_second(ds, module.transfer_collate_fn, batches)
            label = f"vfp hdf5 (cache={cache}), uint8 batches"
            rows.append(Row(group, label, rate, tensor_bytes(readers), identical))

    for low_dim_cache in (False, True):
        baseline = RobomimicStyleDataset(path, demos, ["state"], image_keys, stats, modes, low_dim_cache)
        identical = compare(reference, default_collate([baseline[i] for i in indices]))
        rate = batches_per_second(baseline, default_collate, slow_batches)
        name = "robomimic-style low_dim cache" if low_dim_cache else "robomimic-style per-sample h5py"
        rows.append(Row(group, name, rate, baseline.data_bytes(), identical))

    source = RobomimicStyleDataset(path, demos, ["state"], image_keys, stats, modes, low_dim_cache=True)
    start = time.perf_counter()
    cache_ds = AllWindowsCache(source, len(source))
    build_s = time.perf_counter() - start
    identical = compare(reference, default_collate([cache_ds[i] for i in indices]))
    rate = batches_per_second(cache_ds, default_collate, batches)
    rows.append(
        Row(
            group,
            f"robomimic-style all-windows cache (built in {build_s:.1f} s)",
            rate,
            cache_ds.data_bytes(),
            identical,
        )
    )
    tensors = AllWindowsTensors(cache_ds)
    del cache_ds
    identical = compare(reference, tensors.__getitems__(indices))
    rate = batches_per_second(tensors, lambda batch: batch, batches)
    rows.append(Row(group, "(reference) all windows as tensors", rate, tensors.data_bytes(), identical))
    return rows


def lerobot_rows(
    episodes: list[Any], task: Any, workdir: Path, batches: int, slow_batches: int, images: bool
) -> list[Row]:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from vfp_il_components.data.lerobot import LeRobotDataModule, delta_timestamps, resolve_video_backend
    from vfp_il_components.data.lerobot_writer import write_lerobot_dataset
    from vfp_il_components.data.specs import LeRobotDataConfig

    group = "lerobot images" if images else "lerobot low-dim"
    root = workdir / ("lerobot_images" if images else "lerobot_low_dim")
    start = time.perf_counter()
    write_lerobot_dataset(episodes, root, repo_id="vfp/benchmark", task=task, video=False)
    print(f"{group}: LeRobotDataset written in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    image_keys = ["observation.image"] if images else []
    config = LeRobotDataConfig(
        type="lerobot", repo_id="vfp/benchmark", root=str(root), image_keys=image_keys, history=HISTORY,
        horizon=HORIZON, val_ratio=0.0, batch_size=BATCH, state_normalization="none", action_normalization="none",
    )  # fmt: skip
    module = LeRobotDataModule(config)
    module.setup()
    ours = module.train_dataset
    assert isinstance(ours, WindowDataset)
    indices = probe_indices(len(ours))[:64]
    reference = module.collate_fn(ours.__getitems__(indices))
    deltas = delta_timestamps(["observation.state", *image_keys], "action", task.fps, HISTORY, HORIZON)
    baseline = LeRobotDataset(
        "vfp/benchmark", root=root, delta_timestamps=deltas, video_backend=resolve_video_backend("auto")
    )
    identical = compare(reference, default_collate([baseline[i] for i in indices]))
    readers = {**ours.observations, "action": ours.action}
    rate = batches_per_second(ours, module.collate_fn, batches if not images else slow_batches)
    rows = [Row(group, "vfp lerobot (fast low-dim path)", rate, tensor_bytes(readers), identical)]
    rate = batches_per_second(baseline, default_collate, slow_batches)
    rows.append(Row(group, "LeRobotDataset + DataLoader", rate, None, identical))
    return rows


CAMERA_BATCH = 64


def write_camera_dataset(root: Path, episodes: int, length: int, size: int, cameras: int, *, video: bool) -> Path:
    """A LeRobot dataset with ``cameras`` RGB cameras (moving shapes on a gradient), a 4-d state and 2-d
    actions, written with ``LeRobotDataset.create`` / ``add_frame`` / ``save_episode`` / ``finalize``."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features: dict[str, dict[str, Any]] = {
        "observation.state": {"dtype": "float32", "shape": (4,), "names": None},
        "action": {"dtype": "float32", "shape": (2,), "names": None},
    }
    keys = [f"observation.images.cam{i}" for i in range(cameras)]
    for key in keys:
        features[key] = {
            "dtype": "video" if video else "image", "shape": (size, size, 3), "names": ["height", "width", "channels"]
        }  # fmt: skip
    dataset = LeRobotDataset.create(
        repo_id="vfp/cameras", fps=10, features=features, root=root, use_videos=video, image_writer_threads=2
    )
    grid = np.linspace(0.0, 1.0, size, dtype=np.float32)
    background = (np.stack(np.meshgrid(grid, grid), axis=-1) * 120).astype(np.uint8)
    rng = np.random.default_rng(0)
    for episode in range(episodes):
        start = rng.uniform(0, size, (cameras, 2))
        for t in range(length):
            frame: dict[str, Any] = {
                "observation.state": rng.normal(size=4).astype(np.float32),
                "action": rng.normal(size=2).astype(np.float32),
                "task": "move",
            }
            for c, key in enumerate(keys):
                image = np.zeros((size, size, 3), dtype=np.uint8)
                image[..., :2] = background
                image[..., 2] = (40 * c + 3 * episode) % 256
                y, x = ((start[c] + t * np.array([1.3, 0.7])) % (size - 12)).astype(int)
                image[y : y + 12, x : x + 12] = (255, 200 - 40 * c, 60)
                frame[key] = image
            dataset.add_frame(frame)
        dataset.save_episode()
    dataset.finalize()
    return root


def camera_rows(args: argparse.Namespace, workdir: Path, *, video: bool) -> list[Row]:
    import resource

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from vfp_il_components.data.frame_cache import build_lerobot_cache, human_bytes
    from vfp_il_components.data.lerobot import LeRobotDataModule, delta_timestamps
    from vfp_il_components.data.specs import LeRobotDataConfig

    kind = "video" if video else "images"
    group = f"lerobot {kind}"
    root = workdir / f"cameras_{kind}"
    start = time.perf_counter()
    write_camera_dataset(
        root, args.camera_episodes, args.camera_length, args.camera_size, args.cameras, video=video
    )  # fmt: skip
    frames = args.camera_episodes * args.camera_length
    written = time.perf_counter() - start
    print(f"{group}: {args.camera_episodes} episodes x {args.camera_length} frames, {args.cameras} cameras "
          f"{args.camera_size}x{args.camera_size}, written in {written:.1f} s", file=sys.stderr)  # fmt: skip
    keys = [f"observation.images.cam{i}" for i in range(args.cameras)]
    cache_dir = workdir / f"cache_{kind}"
    start = time.perf_counter()
    entries = build_lerobot_cache(root, keys, cache_dir)
    build_s = time.perf_counter() - start
    cache_bytes = sum(e.nbytes for e in entries)

    def module_for(frame_cache: bool) -> LeRobotDataModule:
        config = LeRobotDataConfig(
            type="lerobot", repo_id="vfp/cameras", root=str(root), image_keys=keys, history=HISTORY, horizon=HORIZON,
            val_ratio=0.0, batch_size=CAMERA_BATCH, state_normalization="none", action_normalization="none",
            video_backend="pyav", frame_cache=frame_cache, frame_cache_dir=str(cache_dir),
        )  # fmt: skip
        module = LeRobotDataModule(config)
        module.setup()
        return module

    module = module_for(True)
    ours = module.train_dataset
    assert isinstance(ours, WindowDataset)
    indices = probe_indices(len(ours))[:32]
    reference = module.collate_fn(ours.__getitems__(indices))
    deltas = delta_timestamps(["observation.state", *keys], "action", 10, HISTORY, HORIZON)
    baseline = LeRobotDataset("vfp/cameras", root=root, delta_timestamps=deltas, video_backend="pyav")
    identical = compare(reference, default_collate([baseline[i] for i in indices]))
    low_dim = tensor_bytes({"state": ours.observations["observation.state"], "action": ours.action})
    rows = []
    rate = batches_per_second(ours, module.collate_fn, args.batches, batch_size=CAMERA_BATCH)
    cached = f"vfp + frame cache ({human_bytes(cache_bytes)} mapped, built in {build_s:.1f} s)"
    rows.append(Row(group, cached, rate, low_dim + cache_bytes, identical))
    rate = batches_per_second(ours, module.transfer_collate_fn, args.batches, batch_size=CAMERA_BATCH)
    rows.append(Row(group, "vfp + frame cache, uint8 batches", rate, low_dim + cache_bytes, "-"))
    rate = batches_per_second(ours, module.collate_fn, args.batches, batch_size=CAMERA_BATCH, workers=2)
    rows.append(Row(group, "vfp + frame cache, 2 workers", rate, low_dim + cache_bytes, identical))
    fallback = module_for(False)
    fallback_identical = compare(reference, fallback.collate_fn(fallback.train_dataset.__getitems__(indices)))
    rate = batches_per_second(fallback.train_dataset, fallback.collate_fn, args.slow_batches, batch_size=CAMERA_BATCH)
    rows.append(Row(group, "vfp, frame_cache: false (LeRobotDataset decoding)", rate, low_dim, fallback_identical))
    one_pass = None
    for workers in (0, 2):
        rate = batches_per_second(
            baseline, default_collate, args.slow_batches, batch_size=CAMERA_BATCH, workers=workers
        )  # fmt: skip
        one_pass = frames / rate if workers == 0 else one_pass
        rows.append(Row(group, f"LeRobotDataset + DataLoader ({workers} workers)", rate, None, identical))
    assert one_pass is not None
    print(f"{group}: frame cache built in {build_s:.1f} s = {build_s / one_pass:.2f}x one LeRobotDataset pass over "
          f"the {frames} frames ({one_pass:.1f} s at its measured rate); cache {human_bytes(cache_bytes)}; "
          f"max RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB",
          file=sys.stderr)  # fmt: skip
    return rows


def print_table(rows: list[Row]) -> None:
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(row.group, []).append(row)
    header = (
        f"| {'data':<15} | {'loader':<58} | {'samples/s':>11} | {'ours / this':>11} | {'RAM (MB)':>9} | identical |"
    )
    print(header)
    print("|" + "|".join("-" * (len(part)) for part in header.split("|")[1:-1]) + "|")
    for group, members in groups.items():
        ours = members[0].samples_per_s
        for row in members:
            ram = "-" if row.ram_bytes is None else f"{row.ram_bytes / 2**20:.1f}"
            ratio = ours / row.samples_per_s
            print(
                f"| {group:<15} | {row.name:<58} | {row.samples_per_s:>11,.0f} | {ratio:>10.1f}x | {ram:>9} | "
                f"{row.identical:<9} |"
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=500, help="low-dim demos (about 36 frames each)")
    parser.add_argument("--image-episodes", type=int, default=60, help="demos of the image dataset")
    parser.add_argument("--image-size", type=int, default=84)
    parser.add_argument("--batches", type=int, default=100, help="timed batches for the fast loaders")
    parser.add_argument("--slow-batches", type=int, default=5, help="timed batches for the per-sample loaders")
    parser.add_argument("--skip-images", action="store_true")
    parser.add_argument("--skip-lerobot", action="store_true")
    parser.add_argument("--skip-cameras", action="store_true", help="skip the LeRobot camera (image/video) rows")
    parser.add_argument("--camera-episodes", type=int, default=20, help="episodes of the LeRobot camera datasets")
    parser.add_argument("--camera-length", type=int, default=200, help="frames per episode")
    parser.add_argument("--camera-size", type=int, default=96, help="side of the camera images")
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--only-cameras", action="store_true", help="only the LeRobot camera rows")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (DataLoader workers use 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    task = get_task("avoid_obstacle")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="vfp-data-bench-") as tmp:
        workdir = Path(tmp)
        low_dim_episodes = task.generate_demos(args.episodes, seed=0)
        low_dim_path = write_hdf5_dataset(low_dim_episodes, workdir / "low_dim.h5", task=task, val_ratio=0.0)
        frames = sum(len(e) for e in low_dim_episodes)
        print(f"low-dim dataset: {args.episodes} episodes, {frames} frames; batch {BATCH}, horizon {HORIZON}, "
              f"history {HISTORY}; torch threads {torch.get_num_threads()}", file=sys.stderr)  # fmt: skip
        if not args.only_cameras:
            rows += hdf5_rows(low_dim_path, images=False, batches=args.batches, slow_batches=args.slow_batches)
        image_episodes = None
        if not args.skip_images and not args.only_cameras:
            image_episodes = task.generate_demos(args.image_episodes, seed=1, images=True, image_size=args.image_size)
            image_path = write_hdf5_dataset(image_episodes, workdir / "images.h5", task=task, val_ratio=0.0)
            print(f"image dataset: {args.image_episodes} episodes, {sum(len(e) for e in image_episodes)} frames, "
                  f"{args.image_size}x{args.image_size} RGB", file=sys.stderr)  # fmt: skip
            rows += hdf5_rows(
                image_path, images=True, batches=max(args.batches // 5, 5), slow_batches=args.slow_batches
            )
        try:
            import lerobot  # noqa: F401
        except ImportError:
            lerobot_available = False
        else:
            lerobot_available = True
        if lerobot_available and not args.skip_lerobot:
            if not args.only_cameras:
                rows += lerobot_rows(low_dim_episodes, task, workdir, args.batches, args.slow_batches, images=False)
            if image_episodes is not None:
                rows += lerobot_rows(image_episodes, task, workdir, max(args.batches // 5, 5), args.slow_batches, True)
            if not args.skip_cameras:
                rows += camera_rows(args, workdir, video=False)
                rows += camera_rows(args, workdir, video=True)
        elif not args.skip_lerobot:
            print(
                "lerobot is not importable here: LeRobot rows skipped (run in the `nox -s lerobot` venv)",
                file=sys.stderr,
            )
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
