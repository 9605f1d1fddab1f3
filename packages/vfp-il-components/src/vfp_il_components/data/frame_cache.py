"""Frame cache: camera frames decoded once into a uint8 memory-mapped file, then gathered per batch.

A LeRobot image or video feature is decoded once (PNG images with PIL, videos sequentially per file with
PyAV, far cheaper than seeking for every sample) into ``frames.u8``: a C-ordered uint8 array
(frames, C, H, W) in the dataset's global frame order, next to a ``meta.json`` describing it. Windows of
frames are then ``np.take`` gathers from the memory map, shared by DataLoader workers and by the ranks of
one machine through the page cache, without copies.

Layout under the cache folder (``$VFP_CACHE_DIR`` or ``~/.cache/vfp`` by default)::

    frames/<dataset>-<feature>-<fingerprint>/frames.u8   # uint8 (N, C, H, W)
    frames/<dataset>-<feature>-<fingerprint>/meta.json   # written last: shape, dataset, fingerprint
    frames/<dataset>-<feature>-<fingerprint>.lock        # file lock held while building

The fingerprint covers what decides the frames: ``meta/info.json`` (content), the sizes and modification
times of the metadata, data and video files of the feature, the decoder and the cache format version. A
changed dataset therefore gets a new entry (the old one stays until ``vfp data cache PATH --clear``).

Building is safe with several processes: it happens under a file lock, into a temporary folder that is
renamed into place once complete, so a reader never sees a half-written cache, and two processes building
at once produce one cache (the second waits and then reads the first's). An entry whose frame file does
not have the size its ``meta.json`` states (a truncated file) is detected and rebuilt. The disk space a
build needs is checked (and stated) before it starts. A cache folder that cannot be written makes the
loader fall back to decoding through ``LeRobotDataset`` with a warning.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vfp_il_components.data.errors import DataError

__all__ = [
    "CACHE_VERSION",
    "CachedFrames",
    "FrameCacheEntry",
    "FrameCacheUnavailable",
    "build_lerobot_cache",
    "build_lerobot_frames",
    "cache_entries",
    "clear_cache",
    "default_cache_dir",
    "ensure_entry",
    "lerobot_frame_entry",
]

CACHE_VERSION = 1
CACHE_DIR_ENV = "VFP_CACHE_DIR"
FRAMES_FILE = "frames.u8"
META_FILE = "meta.json"
DISK_MARGIN_BYTES = 256 * 2**20
"""Free space left over after a build (the build is refused when it would leave less)."""
VIDEO_TOLERANCE_S = 1e-4
"""LeRobotDataset's default ``tolerance_s``: a frame must lie this close to the timestamp it stands for."""


class FrameCacheUnavailable(RuntimeError):
    """The cache folder cannot be written (read-only, permissions); callers fall back to decoding per sample."""


def default_cache_dir() -> Path:
    """``$VFP_CACHE_DIR``, else ``~/.cache/vfp``."""
    configured = os.environ.get(CACHE_DIR_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "vfp"


def human_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class FrameCacheEntry:
    """One cached feature: where it lives and the array it holds."""

    path: Path
    """The entry folder (holding ``frames.u8`` and ``meta.json`` once built)."""
    num_frames: int
    shape: tuple[int, int, int]
    """(C, H, W) of one frame."""
    meta: dict[str, Any]
    """What ``meta.json`` records besides the shape: dataset root, feature, fingerprint, decoder."""

    @property
    def nbytes(self) -> int:
        c, h, w = self.shape
        return self.num_frames * c * h * w

    @property
    def frames_path(self) -> Path:
        return self.path / FRAMES_FILE

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def is_complete(self) -> bool:
        """``meta.json`` is there, matches this entry, and the frame file has exactly the stated size."""
        recorded = read_meta(self.path)
        if recorded is None:
            return False
        if recorded.get("version") != CACHE_VERSION or recorded.get("fingerprint") != self.meta.get("fingerprint"):
            return False
        if recorded.get("num_frames") != self.num_frames or tuple(recorded.get("shape", ())) != self.shape:
            return False
        try:
            return self.frames_path.stat().st_size == self.nbytes
        except OSError:
            return False

    def reader(self, positions: np.ndarray | None = None) -> CachedFrames:
        return CachedFrames(self.frames_path, self.num_frames, self.shape, positions)


def read_meta(folder: Path) -> dict[str, Any] | None:
    """The parsed ``meta.json`` of an entry folder, or None when absent or unreadable."""
    try:
        value = json.loads((folder / META_FILE).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class CachedFrames:
    """A ``FeatureReader`` over a built entry: uint8 frames (B, W, C, H, W) gathered from the memory map.

    ``positions`` maps the dataset's frame numbers (0..n-1 over the selected episodes) to rows of the
    cache (the global frame index); None when they coincide. The memory map is opened lazily in each
    process and not pickled (DataLoader workers reopen it; pages are shared through the page cache).
    """

    def __init__(
        self, path: Path, num_frames: int, shape: tuple[int, int, int], positions: np.ndarray | None = None
    ) -> None:
        self.path = path
        self.num_frames = num_frames
        self.shape = shape
        self.positions = None if positions is None else np.asarray(positions, dtype=np.int64)
        self._array: np.memmap[Any, np.dtype[np.uint8]] | None = None
        self._pid: int | None = None

    def array(self) -> np.memmap[Any, np.dtype[np.uint8]]:
        if self._array is None or self._pid != os.getpid():
            self._array = np.memmap(self.path, dtype=np.uint8, mode="r", shape=(self.num_frames, *self.shape))
            self._pid = os.getpid()
        return self._array

    def read(self, frames: np.ndarray) -> torch.Tensor:
        rows = frames if self.positions is None else self.positions[frames]
        return torch.from_numpy(np.take(self.array(), rows, axis=0))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_array": None, "_pid": None}


# -- building -----------------------------------------------------------------------------------------

Fill = Callable[[np.ndarray, Callable[[int], None]], None]
"""Writes every frame into the (N, C, H, W) uint8 array; calls ``advance(n)`` as frames are done."""


def ensure_entry(entry: FrameCacheEntry, fill: Fill, *, description: str, poll_s: float = 0.5) -> FrameCacheEntry:
    """Return ``entry`` once it is complete, building it with ``fill`` under its lock when needed.

    Raises ``FrameCacheUnavailable`` when the entry is missing and the cache folder cannot be written,
    and ``DataError`` when the disk lacks the space (checked before anything is written).
    """
    if entry.is_complete():
        return entry
    from filelock import FileLock, Timeout

    try:
        entry.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(entry.lock_path))
        lock.acquire(timeout=0)
    except Timeout:
        _say(f"waiting for another process to finish the frame cache of {description} ({entry.path})")
        while True:
            try:
                lock.acquire(timeout=poll_s)
                break
            except Timeout:
                continue
    except OSError as exc:
        raise FrameCacheUnavailable(f"cannot write the frame cache folder {entry.path.parent}: {exc}") from exc
    try:
        if entry.is_complete():  # built by another process while we waited
            return entry
        _build(entry, fill, description)
        return entry
    finally:
        lock.release()


def _build(entry: FrameCacheEntry, fill: Fill, description: str) -> None:
    folder = entry.path.parent
    for stale in folder.glob(entry.path.name + ".tmp-*"):  # left by a killed build (we hold the lock)
        shutil.rmtree(stale, ignore_errors=True)
    if entry.path.exists():  # incomplete or truncated: rebuilt from scratch
        _say(f"frame cache {entry.path} is incomplete or truncated; rebuilding it")
        shutil.rmtree(entry.path)
    free = shutil.disk_usage(folder).free
    if free < entry.nbytes + DISK_MARGIN_BYTES:
        raise DataError(
            f"the frame cache of {description} needs {human_bytes(entry.nbytes)} in {folder}, but only "
            f"{human_bytes(free)} are free: free some space, point data.frame_cache_dir (or ${CACHE_DIR_ENV}) to a "
            "larger disk, or set data.frame_cache: false to decode every sample through LeRobotDataset (slow)"
        )
    _say(
        f"building the frame cache of {description}: {entry.num_frames} frames of {entry.shape}, "
        f"{human_bytes(entry.nbytes)} in {entry.path} (once; later runs reuse it)"
    )
    temporary = folder / f"{entry.path.name}.tmp-{os.getpid()}-{time.monotonic_ns()}"
    temporary.mkdir()
    try:
        array = np.memmap(temporary / FRAMES_FILE, dtype=np.uint8, mode="w+", shape=(entry.num_frames, *entry.shape))
        start = time.perf_counter()
        done = [0]
        with _Progress(entry.num_frames, description) as advance:

            def count(n: int) -> None:
                done[0] += n
                advance(n)

            fill(array, count)
        if done[0] != entry.num_frames:
            raise DataError(f"decoded {done[0]} frames for {description}, but the dataset has {entry.num_frames}")
        array.flush()
        del array
        meta = {
            **entry.meta,
            "version": CACHE_VERSION,
            "num_frames": entry.num_frames,
            "shape": list(entry.shape),
            "dtype": "uint8",
            "build_seconds": round(time.perf_counter() - start, 3),
        }
        (temporary / META_FILE).write_text(json.dumps(meta, indent=2))
        with open(temporary / FRAMES_FILE, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, entry.path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def _say(message: str) -> None:
    print(f"[vfp] {message}", file=sys.stderr, flush=True)


class _Progress:
    """A rich progress bar on a terminal, nothing otherwise; yields ``advance(n)``."""

    def __init__(self, total: int, description: str) -> None:
        self.total = total
        self.description = description
        self._bar: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if not sys.stderr.isatty():
            return lambda n: None
        from rich.console import Console
        from rich.progress import Progress

        self._bar = Progress(console=Console(stderr=True), transient=True)
        self._bar.start()
        task = self._bar.add_task(f"decoding {self.description}", total=self.total)
        return lambda n: self._bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


# -- LeRobot features ----------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "dataset"


def _dataset_files(root: Path, key: str) -> Iterator[Path]:
    yield root / "meta" / "info.json"
    for folder in (root / "meta" / "episodes", root / "data", root / "videos" / key):
        if folder.is_dir():
            yield from sorted(p for p in folder.rglob("*") if p.is_file())


def lerobot_fingerprint(root: Path, key: str, decoder: str) -> str:
    """Hash of what decides a feature's frames: info.json's content, the metadata, data and video files'
    names, sizes and modification times, the decoder and the cache version."""
    digest = hashlib.blake2b(digest_size=10)
    digest.update(json.dumps({"version": CACHE_VERSION, "key": key, "decoder": decoder}).encode())
    digest.update((root / "meta" / "info.json").read_bytes())
    for path in _dataset_files(root, key):
        stat = path.stat()
        digest.update(f"{path.relative_to(root).as_posix()}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()


def lerobot_frame_entry(
    root: Path, key: str, *, num_frames: int, shape: tuple[int, int, int], cache_dir: Path | None = None
) -> FrameCacheEntry:
    """The cache entry of LeRobot feature ``key`` of the dataset in ``root`` (built or not)."""
    root = root.expanduser().resolve()
    decoder = "pyav"  # videos are decoded with PyAV (LeRobot's "pyav" backend); images with PIL
    fingerprint = lerobot_fingerprint(root, key, decoder)
    info = json.loads((root / "meta" / "info.json").read_text())
    name = f"{_slug(root.name)}-{_slug(key)}-{fingerprint}"
    folder = (cache_dir if cache_dir is not None else default_cache_dir()).expanduser() / "frames"
    meta = {
        "format": "lerobot",
        "dataset_root": str(root),
        "feature": key,
        "feature_dtype": info["features"][key]["dtype"],
        "fingerprint": fingerprint,
        "decoder": decoder,
    }
    return FrameCacheEntry(folder / name, num_frames, shape, meta)


def build_lerobot_frames(root: Path, meta: Any, key: str) -> Fill:
    """A ``Fill`` decoding LeRobot feature ``key`` (image: PNG bytes in the data files; video: mp4 files)
    exactly as ``LeRobotDataset.__getitem__`` does (video: the frame closest to each row's timestamp)."""
    import pyarrow.parquet as pq

    files = sorted((root / "data").rglob("*.parquet"))
    is_video = meta.features[key]["dtype"] == "video"

    def fill(out: np.ndarray, advance: Callable[[int], None]) -> None:
        if not is_video:
            for path in files:
                for batch in pq.ParquetFile(path).iter_batches(columns=["index", key], batch_size=256):
                    rows = batch.column("index").to_numpy()
                    images = batch.column(key).to_pylist()
                    for row, image in zip(rows.tolist(), images, strict=True):
                        out[row] = _decode_image(image, out.shape[1:], key, row)
                    advance(len(rows))
            return
        # video: rows' timestamps per episode, episodes grouped by their mp4 file
        queries: dict[Path, list[tuple[float, int]]] = {}
        for path in files:
            table = pq.read_table(path, columns=["index", "episode_index", "timestamp"])
            rows = table.column("index").to_numpy()
            episodes = table.column("episode_index").to_numpy()
            stamps = table.column("timestamp").to_numpy().astype(np.float32)
            for episode in np.unique(episodes).tolist():
                record = meta.episodes[int(episode)]
                video = root / meta.get_video_file_path(int(episode), key)
                offset = float(record[f"videos/{key}/from_timestamp"])
                chosen = episodes == episode
                for stamp, row in zip(stamps[chosen].tolist(), rows[chosen].tolist(), strict=True):
                    queries.setdefault(video, []).append((offset + float(stamp), int(row)))
        for video, wanted in queries.items():
            _decode_video(video, sorted(wanted), out, key, advance)

    return fill


def _decode_image(image: Any, shape: tuple[int, ...], key: str, row: int) -> np.ndarray:
    from PIL import Image

    if not isinstance(image, dict) or image.get("bytes") is None:
        raise DataError(f"frame {row}: expected embedded image bytes", key=key)
    with Image.open(io.BytesIO(image["bytes"])) as decoded:
        pixels = np.asarray(decoded)
    pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
    frame = pixels.transpose(2, 0, 1)
    if frame.shape != tuple(shape):
        raise DataError(f"frame {row}: image of shape {frame.shape} (C, H, W), expected {tuple(shape)}", key=key)
    return frame


def _decode_video(
    path: Path, wanted: list[tuple[float, int]], out: np.ndarray, key: str, advance: Callable[[int], None]
) -> None:
    """Decode ``path`` once, front to back, writing for each (timestamp, row) the closest frame (as
    torchvision's PyAV reader, which LeRobot's ``pyav`` backend uses, converts it: ``to_rgb()``)."""
    import av

    if not path.is_file():
        raise DataError("video file missing", file=path, key=key)
    position = 0
    previous: tuple[float, np.ndarray] | None = None

    def assign(stamp: float, frame: np.ndarray, row: int, distance: float) -> None:
        if distance >= VIDEO_TOLERANCE_S:
            raise DataError(
                f"no frame within {VIDEO_TOLERANCE_S}s of timestamp {stamp:.6f}s (closest is {distance:.6f}s "
                "away); the video and the data timestamps disagree",
                file=path,
                key=key,
            )
        if frame.shape != out.shape[1:]:
            raise DataError(f"frames of shape {frame.shape} (C, H, W), expected {out.shape[1:]}", file=path, key=key)
        out[row] = frame

    with av.open(str(path)) as container:
        for decoded in container.decode(video=0):
            stamp = float(decoded.pts * decoded.time_base)
            pixels = decoded.to_rgb().to_ndarray().transpose(2, 0, 1)
            while position < len(wanted) and wanted[position][0] <= stamp:
                query, row = wanted[position]
                if previous is not None and query - previous[0] <= stamp - query:
                    assign(query, previous[1], row, query - previous[0])
                else:
                    assign(query, pixels, row, stamp - query)
                position += 1
                advance(1)
            previous = (stamp, pixels)
            if position == len(wanted):
                break
    while position < len(wanted):  # past the last decoded frame
        query, row = wanted[position]
        if previous is None:
            raise DataError("the video holds no frames", file=path, key=key)
        assign(query, previous[1], row, query - previous[0])
        position += 1
        advance(1)


# -- inspection ----------------------------------------------------------------------------------------


def cache_entries(cache_dir: Path | None = None, dataset_root: Path | None = None) -> list[dict[str, Any]]:
    """Built entries (their ``meta.json`` plus ``path``, ``bytes``, ``complete``), optionally only those
    of the dataset in ``dataset_root``; also incomplete leftovers (``complete: false``)."""
    folder = (cache_dir if cache_dir is not None else default_cache_dir()).expanduser() / "frames"
    if not folder.is_dir():
        return []
    wanted = dataset_root.expanduser().resolve() if dataset_root is not None else None
    entries = []
    for path in sorted(p for p in folder.iterdir() if p.is_dir() and ".tmp-" not in p.name):
        meta = read_meta(path) or {}
        if wanted is not None:
            # complete entries name their dataset; a leftover without meta.json is matched by its name
            mine = meta.get("dataset_root") == str(wanted) if meta else path.name.startswith(_slug(wanted.name) + "-")
            if not mine:
                continue
        frames = path / FRAMES_FILE
        size = frames.stat().st_size if frames.is_file() else 0
        expected = None
        if meta:
            expected = int(meta["num_frames"]) * int(np.prod(meta["shape"]))
        complete = expected is not None and size == expected
        entries.append({**meta, "path": str(path), "bytes": size, "complete": complete})
    return entries


def clear_cache(cache_dir: Path | None = None, dataset_root: Path | None = None) -> list[Path]:
    """Remove the entries (and their lock files and leftovers) of ``dataset_root``, or all entries."""
    removed = []
    for entry in cache_entries(cache_dir, dataset_root):
        path = Path(entry["path"])
        shutil.rmtree(path, ignore_errors=True)
        for extra in [path.with_name(path.name + ".lock"), *path.parent.glob(path.name + ".tmp-*")]:
            if extra.is_dir():
                shutil.rmtree(extra, ignore_errors=True)
            else:
                extra.unlink(missing_ok=True)
        removed.append(path)
    return removed


def build_lerobot_cache(
    root: Path, keys: list[str] | None = None, cache_dir: Path | None = None
) -> list[FrameCacheEntry]:
    """Build (or find) the entries of the image and video features ``keys`` (default: all) of a LeRobot
    dataset folder; what ``vfp data cache PATH`` does."""
    from vfp_il_components.data.lerobot import _image_shape, import_lerobot

    root = root.expanduser().resolve()
    if not (root / "meta" / "info.json").is_file():
        raise DataError("not a LeRobot dataset folder (meta/info.json missing)", file=root)
    _, metadata = import_lerobot()
    meta = metadata(f"local/{root.name}", root=root)
    cameras = [k for k, f in meta.features.items() if f["dtype"] in ("image", "video")]
    for key in keys or []:
        if key not in cameras:
            raise DataError(f"not an image or video feature (those are: {', '.join(cameras) or 'none'})", key=key)
    entries = []
    for key in keys or cameras:
        entry = lerobot_frame_entry(
            root, key, num_frames=int(meta.total_frames), shape=_image_shape(meta.features[key]), cache_dir=cache_dir
        )
        entries.append(ensure_entry(entry, build_lerobot_frames(root, meta, key), description=f"{root.name} {key}"))
    return entries


def warn_fallback(reason: str) -> None:
    warnings.warn(
        f"frame cache unavailable ({reason}); decoding every sample through LeRobotDataset instead (much slower). "
        f"Set data.frame_cache_dir or ${CACHE_DIR_ENV} to a writable folder.",
        stacklevel=3,
    )
