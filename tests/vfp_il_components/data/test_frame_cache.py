"""The frame cache: locking, atomic builds, truncation, fingerprints, fallbacks, and (with lerobot) frames
identical to LeRobotDataset's for image and video features."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from vfp_il_components.data.errors import DataError
from vfp_il_components.data.frame_cache import (
    FrameCacheEntry,
    FrameCacheUnavailable,
    cache_entries,
    clear_cache,
    ensure_entry,
)

SHAPE = (3, 4, 5)


def entry(folder: Path, num_frames: int = 6, fingerprint: str = "abc") -> FrameCacheEntry:
    meta = {"dataset_root": "/data/x", "feature": "cam", "fingerprint": fingerprint}
    return FrameCacheEntry(folder / "frames" / f"x-cam-{fingerprint}", num_frames, SHAPE, meta)


def pattern(out: np.ndarray, advance: Any) -> None:
    out[:] = (np.arange(out.size) % 251).reshape(out.shape)
    advance(len(out))


def expected_frames(num_frames: int = 6) -> np.ndarray:
    return (np.arange(num_frames * int(np.prod(SHAPE))) % 251).reshape(num_frames, *SHAPE).astype(np.uint8)


def slow_counted_fill(log: str) -> Any:
    def fill(out: np.ndarray, advance: Any) -> None:
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        time.sleep(1.0)
        pattern(out, advance)

    return fill


def _build_in_process(folder: str, log: str, barrier: Any, queue: Any) -> None:
    barrier.wait()
    built = ensure_entry(entry(Path(folder)), slow_counted_fill(log), description="test")
    queue.put(built.reader().read(np.arange(6)[:, None]).numpy().tobytes())


def test_reader_gathers_windows_of_uint8_frames(tmp_path: Path) -> None:
    built = ensure_entry(entry(tmp_path), pattern, description="test")
    frames = np.array([[0, 1], [4, 5], [2, 2]])
    batch = built.reader().read(frames)
    assert batch.dtype == torch.uint8
    assert batch.shape == (3, 2, *SHAPE)
    assert torch.equal(batch, torch.from_numpy(expected_frames()[frames]))
    remapped = built.reader(positions=np.array([5, 4, 3])).read(np.array([[0, 2]]))  # dataset frame -> cache row
    assert torch.equal(remapped[0], torch.from_numpy(expected_frames()[[5, 3]]))
    meta = json.loads((built.path / "meta.json").read_text())
    assert (meta["num_frames"], meta["shape"], meta["feature"]) == (6, list(SHAPE), "cam")


def test_two_processes_building_at_once_produce_one_cache(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier, queue, log = context.Barrier(2), context.Queue(), str(tmp_path / "fills.log")
    workers = [context.Process(target=_build_in_process, args=(str(tmp_path), log, barrier, queue)) for _ in range(2)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert len(Path(log).read_text().splitlines()) == 1  # decoded once
    assert results[0] == results[1] == expected_frames().tobytes()
    assert [p.name for p in (tmp_path / "frames").iterdir() if p.is_dir()] == ["x-cam-abc"]  # no leftovers


def test_a_truncated_cache_is_detected_and_rebuilt(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    built = ensure_entry(entry(tmp_path), pattern, description="test")
    os.truncate(built.frames_path, built.nbytes // 2)
    assert not built.is_complete()
    capfd.readouterr()
    ensure_entry(entry(tmp_path), pattern, description="test")
    assert "incomplete or truncated; rebuilding" in capfd.readouterr().err
    assert torch.equal(built.reader().read(np.arange(6)[:, None])[:, 0], torch.from_numpy(expected_frames()))


def test_a_killed_build_leaves_nothing_a_reader_would_use(tmp_path: Path) -> None:
    def killed(out: np.ndarray, advance: Any) -> None:
        out[:2] = 7
        raise KeyboardInterrupt  # the process dies mid-build

    with pytest.raises(KeyboardInterrupt):
        ensure_entry(entry(tmp_path), killed, description="test")
    assert not entry(tmp_path).is_complete()
    assert [p.name for p in (tmp_path / "frames").iterdir() if p.is_dir()] == []  # the temporary folder is gone
    stale = tmp_path / "frames" / "x-cam-abc.tmp-123-456"  # as a SIGKILLed build would leave it
    stale.mkdir()
    ensure_entry(entry(tmp_path), pattern, description="test")
    assert not stale.exists()
    assert entry(tmp_path).is_complete()


def test_a_build_that_misses_frames_fails_instead_of_caching_zeros(tmp_path: Path) -> None:
    def partial(out: np.ndarray, advance: Any) -> None:
        out[:4] = 1
        advance(4)

    with pytest.raises(DataError, match="decoded 4 frames for test, but the dataset has 6"):
        ensure_entry(entry(tmp_path), partial, description="test")
    assert not entry(tmp_path).is_complete()


def test_not_enough_disk_space_is_refused_before_writing(tmp_path: Path) -> None:
    huge = entry(tmp_path, num_frames=shutil.disk_usage(tmp_path).free // int(np.prod(SHAPE)) + 1)
    with pytest.raises(DataError, match=r"needs .* but only .* are free: .*data.frame_cache: false"):
        ensure_entry(huge, pattern, description="test")
    assert not huge.path.exists()


def test_an_unwritable_cache_folder_is_reported_for_the_fallback(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(FrameCacheUnavailable, match="cannot write the frame cache folder"):
        ensure_entry(entry(blocker), pattern, description="test")


def test_a_read_only_cache_folder_is_reported_for_the_fallback(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    if os.geteuid() == 0:  # root writes through permissions: make the folder a read-only file system
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], check=False)
        if mounted.returncode != 0:
            pytest.skip("running as root and cannot mount a read-only tmpfs")
    else:
        folder.chmod(0o555)
    try:
        with pytest.raises(FrameCacheUnavailable):
            ensure_entry(entry(tmp_path), pattern, description="test")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(folder)], check=False)
        else:
            folder.chmod(0o755)


def test_a_complete_entry_is_read_without_taking_the_lock(tmp_path: Path) -> None:
    """So a complete cache in a read-only folder (where no lock file can be made) is still used."""
    built = ensure_entry(entry(tmp_path), pattern, description="test")
    built.lock_path.unlink()
    built.lock_path.mkdir()  # no lock can be taken there any more

    def fail(out: np.ndarray, advance: Any) -> None:
        raise AssertionError("rebuilt")

    again = ensure_entry(entry(tmp_path), fail, description="test")
    assert torch.equal(again.reader().read(np.array([[5]]))[0, 0], torch.from_numpy(expected_frames()[5]))


def test_info_and_clear_list_and_remove_a_datasets_entries(tmp_path: Path) -> None:
    ensure_entry(entry(tmp_path), pattern, description="test")
    ensure_entry(entry(tmp_path, fingerprint="def"), pattern, description="test")
    listed = cache_entries(tmp_path)
    assert [(e["fingerprint"], e["complete"], e["bytes"]) for e in listed] == [("abc", True, 360), ("def", True, 360)]
    assert len(clear_cache(tmp_path)) == 2
    assert cache_entries(tmp_path) == []
    assert list((tmp_path / "frames").iterdir()) == []


# -- with the real lerobot library -----------------------------------------------------------------------

REPO = "vfp/avoid_obstacle"
IMAGE = "observation.image"


def lerobot_root(folder: Path, *, video: bool, episodes: int = 3, seed: int = 0) -> Path:
    from vfp_il_components.data.lerobot_writer import write_lerobot_dataset
    from vfp_il_components.tasks import get_task

    task = get_task("avoid_obstacle")
    demos = task.generate_demos(episodes, seed=seed, images=True, image_size=12)
    return write_lerobot_dataset(demos, folder, repo_id=REPO, task=task, video=video)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("lerobot.datasets.lerobot_dataset")
    folder = tmp_path_factory.mktemp("lerobot-cache")
    return {"image": lerobot_root(folder / "image", video=False), "video": lerobot_root(folder / "video", video=True)}


def cached_module(root: Path, cache_dir: Path, **options: Any) -> Any:
    from vfp_il_components.data.lerobot import build_lerobot_data
    from vfp_il_components.data.specs import LeRobotDataConfig

    config = LeRobotDataConfig(
        type="lerobot", repo_id=REPO, root=str(root), image_keys=[IMAGE], val_ratio=0.0, video_backend="pyav",
        frame_cache_dir=str(cache_dir), **options,
    )  # fmt: skip
    module = build_lerobot_data(config)
    module.setup()
    return module


def lerobot_images(root: Path) -> torch.Tensor:
    """Every frame as LeRobotDataset decodes it (float (N, C, H, W) in [0, 1])."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset(REPO, root=root, video_backend="pyav")
    return torch.stack([dataset[i][IMAGE] for i in range(len(dataset))])


def all_cached_images(module: Any) -> torch.Tensor:
    size = len(module.train_dataset)
    batch = module.collate_fn(module.train_dataset.__getitems__(list(range(size))))
    return batch[IMAGE][:, -1]


@pytest.mark.lerobot
@pytest.mark.parametrize("kind", ["image", "video"])
def test_every_cached_frame_equals_lerobots(datasets: dict[str, Path], tmp_path: Path, kind: str) -> None:
    module = cached_module(datasets[kind], tmp_path)
    assert [e["feature"] for e in cache_entries(tmp_path)] == [IMAGE]
    assert torch.equal(all_cached_images(module), lerobot_images(datasets[kind]))


@pytest.mark.lerobot
def test_a_modified_dataset_gets_a_new_cache(datasets: dict[str, Path], tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    root = tmp_path / "copy"
    shutil.copytree(datasets["image"], root)
    before = all_cached_images(cached_module(root, tmp_path / "cache"))
    data_file = next((root / "data").rglob("*.parquet"))
    table = pq.read_table(data_file)
    column = table.column(IMAGE).to_pylist()
    pixels = 255 - np.asarray(Image.open(io.BytesIO(column[0]["bytes"])))  # invert frame 0
    encoded = io.BytesIO()
    Image.fromarray(pixels).save(encoded, format="PNG")
    column[0] = {"bytes": encoded.getvalue(), "path": column[0]["path"]}
    index = table.column_names.index(IMAGE)
    pq.write_table(table.set_column(index, IMAGE, pa.array(column, type=table.schema.field(IMAGE).type)), data_file)
    after = all_cached_images(cached_module(root, tmp_path / "cache"))
    assert len(cache_entries(tmp_path / "cache")) == 2
    assert torch.equal(after[0], torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)
    assert torch.equal(after[1:], before[1:])
    assert torch.equal(after, lerobot_images(root))


@pytest.mark.lerobot
def test_a_truncated_lerobot_cache_is_rebuilt_with_the_right_frames(datasets: dict[str, Path], tmp_path: Path) -> None:
    cached_module(datasets["video"], tmp_path)
    (frames,) = [Path(e["path"]) / "frames.u8" for e in cache_entries(tmp_path)]
    os.truncate(frames, frames.stat().st_size - 100)
    assert cache_entries(tmp_path)[0]["complete"] is False
    assert torch.equal(all_cached_images(cached_module(datasets["video"], tmp_path)), lerobot_images(datasets["video"]))
    assert cache_entries(tmp_path)[0]["complete"] is True


@pytest.mark.lerobot
def test_an_unwritable_cache_folder_falls_back_with_a_warning(datasets: dict[str, Path], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.warns(UserWarning, match="frame cache unavailable .* decoding every sample through LeRobotDataset"):
        module = cached_module(datasets["image"], blocker / "cache")
    assert torch.equal(all_cached_images(module), lerobot_images(datasets["image"]))


@pytest.mark.lerobot
def test_cli_builds_inspects_and_clears_the_cache(datasets: dict[str, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vfp_il_components.cli import app

    runner, root, where = CliRunner(), str(datasets["video"]), ["--cache-dir", str(tmp_path)]
    built = runner.invoke(app, ["cache", root, *where, "--json"])
    assert built.exit_code == 0, built.output
    (listed,) = json.loads(built.stdout)
    assert (listed["feature"], listed["complete"], listed["dtype"]) == (IMAGE, True, "uint8")
    info = runner.invoke(app, ["cache", root, *where, "--info"])
    assert re.search(r"observation.image: \d+ frames of 3x12x12 \(uint8 CHW\), .* complete", info.stdout)
    cleared = runner.invoke(app, ["cache", root, *where, "--clear"])
    assert cleared.exit_code == 0
    assert "removed 1 cache entry" in cleared.stdout
    assert cache_entries(tmp_path) == []
    missing = runner.invoke(app, ["cache", str(tmp_path), *where])
    assert missing.exit_code == 1
    assert "meta/info.json missing" in missing.output


EXPERIMENT = """\
seed: 0
device: cpu
threads: 1
data: {{type: lerobot, repo_id: {repo}, root: {root}, image_keys: [observation.image], history: 2, horizon: 4,
        batch_size: 8, val_ratio: 0.0, video_backend: pyav, frame_cache: {cache}, frame_cache_dir: {cache_dir},
        augmentation: {{enabled: true, crop_padding: 1}}}}
model:
  obs_encoder: {{arch: {{type: obs_encoder, out_dim: 16, hidden_dims: [16], image_keys: [observation.image],
                 image_encoder: {{channels: [4], strides: [2], pooling: spatial_softmax, num_keypoints: 4,
                                  out_dim: 8}}}}}}
  velocity: {{arch: {{type: mlp, hidden_dims: [16]}}}}
trainer: {{type: naive_flow_matching_policy, flow: {{num_steps: 2}}}}
losses: {{flow: {{type: l2}}}}
optimizers: {{default: {{type: adamw_cosine, lr: 1e-2}}}}
training: {{max_steps: 4, grad_clip_norm: null}}
evaluation: {{every: 0}}
checkpointing: {{every: 0}}
"""


def tensors(value: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return {prefix: value}
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in tensors(item, f"{prefix}/{key}").items()}
    return {}


@pytest.mark.lerobot
def test_training_from_the_cache_equals_training_through_lerobotdataset(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    """A conv-net policy trained 4 steps on augmented camera batches: the cached path (uint8 memory map,
    per-batch augmentation) and the path decoding through LeRobotDataset give the same weights."""
    weights = {}
    for cache in ("true", "false"):
        run_dir = tmp_path / f"run-{cache}"
        config = EXPERIMENT.format(repo=REPO, root=datasets["video"], cache=cache, cache_dir=tmp_path / "cache")
        (tmp_path / f"{cache}.yaml").write_text(config)
        command = [
            sys.executable,
            "-m",
            "vfp",
            "train",
            f"{cache}.yaml",
            "--run-dir",
            str(run_dir),
            "--progress",
            "none",
        ]
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr[-3000:]
        payload = torch.load(run_dir / "checkpoints" / "step_00000004.pt", map_location="cpu", weights_only=False)
        weights[cache] = {k: v for k, v in tensors(payload).items() if "model" in k and v.is_floating_point()}
    assert any("image" in key for key in weights["true"])  # the conv encoder's weights are compared too
    assert weights["true"]
    assert weights["true"].keys() == weights["false"].keys()
    for key, value in weights["true"].items():
        assert torch.equal(value, weights["false"][key]), key
