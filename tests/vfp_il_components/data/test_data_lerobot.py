"""The `lerobot` dataloader against the real lerobot library (run by `nox -s lerobot`).

Datasets are written with LeRobotDataset.create / add_frame / save_episode / finalize.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from vfp_il_components.data.errors import DataError
from vfp_il_components.data.lerobot import LeRobotDataModule, build_lerobot_data, delta_timestamps
from vfp_il_components.data.specs import LeRobotDataConfig
from vfp_il_components.tasks import get_task

pytestmark = pytest.mark.lerobot
lerobot_dataset = pytest.importorskip("lerobot.datasets.lerobot_dataset")

REPO = "vfp/avoid_obstacle"
IMAGE = "observation.image"
RAW = {"state_normalization": "none", "action_normalization": "none"}


@pytest.fixture(autouse=True)
def frame_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Frame caches go to a per-test folder, never to ~/.cache/vfp."""
    folder = tmp_path / "vfp-cache"
    monkeypatch.setenv("VFP_CACHE_DIR", str(folder))
    return folder


def write(root: Path, episodes: int, *, video: bool, seed: int = 0) -> Path:
    from vfp_il_components.data.lerobot_writer import write_lerobot_dataset

    task = get_task("avoid_obstacle")
    demos = task.generate_demos(episodes, seed=seed, images=True, image_size=16)
    return write_lerobot_dataset(demos, root, repo_id=REPO, task=task, video=video)


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("lerobot") / "images", 6, video=False)


@pytest.fixture(scope="module")
def video_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("lerobot") / "video", 3, video=True, seed=1)


def data_module(root: Path, **options: Any) -> LeRobotDataModule:
    options.setdefault("val_ratio", 0.0)
    module = build_lerobot_data(LeRobotDataConfig(type="lerobot", repo_id=REPO, root=str(root), **options))
    module.setup()
    return module


def reference_dataset(root: Path, episodes: list[int] | None = None, history: int = 2, horizon: int = 16) -> Any:
    keys = ["observation.state", IMAGE]
    deltas = delta_timestamps(keys, "action", 10, history, horizon)
    return lerobot_dataset.LeRobotDataset(
        REPO, root=root, episodes=episodes, delta_timestamps=deltas, video_backend="pyav"
    )


def random_indices(size: int, count: int = 24, seed: int = 0) -> list[int]:
    rng = np.random.default_rng(seed)
    return sorted({0, size - 1, *rng.integers(0, size, count).tolist()})


def assert_same_as_lerobot(ours: dict[str, torch.Tensor], reference: Any, indices: list[int]) -> None:
    for row, index in enumerate(indices):
        item = reference[index]
        for key in ("observation.state", IMAGE, "action"):
            assert torch.equal(ours[key][row], item[key]), (index, key)
            assert torch.equal(ours[f"{key}_is_pad"][row], item[f"{key}_is_pad"]), (index, key)


def fast_batch(module: LeRobotDataModule, indices: list[int]) -> dict[str, torch.Tensor]:
    return module.collate_fn(module.train_dataset.__getitems__(indices))


@pytest.mark.parametrize("frame_cache", [True, False])
def test_fast_path_returns_lerobots_samples_and_pad_masks(image_root: Path, frame_cache: bool) -> None:
    module = data_module(image_root, image_keys=[IMAGE], frame_cache=frame_cache, **RAW)
    indices = random_indices(len(module.train_dataset))
    assert_same_as_lerobot(fast_batch(module, indices), reference_dataset(image_root), indices)


@pytest.mark.parametrize("frame_cache", [True, False])
def test_fast_path_on_a_video_feature_decoded_with_pyav(video_root: Path, frame_cache: bool) -> None:
    module = data_module(video_root, image_keys=[IMAGE], video_backend="pyav", frame_cache=frame_cache, **RAW)
    indices = random_indices(len(module.train_dataset), count=8)
    assert_same_as_lerobot(fast_batch(module, indices), reference_dataset(video_root), indices)


def test_episode_subset_matches_lerobots_subset(image_root: Path) -> None:
    module = data_module(image_root, image_keys=[IMAGE], episodes=[1, 3, 4], **RAW)
    reference = reference_dataset(image_root, episodes=[1, 3, 4])
    assert len(module.train_dataset) == len(reference)
    indices = random_indices(len(module.train_dataset), seed=1)
    assert_same_as_lerobot(fast_batch(module, indices), reference, indices)


def test_plain_path_equals_the_fast_path_with_normalization(image_root: Path) -> None:
    fast_module = data_module(image_root, image_keys=[IMAGE])
    plain = data_module(image_root, image_keys=[IMAGE], fast_low_dim=False)
    indices = random_indices(len(fast_module.train_dataset), count=10)
    batch = fast_batch(fast_module, indices)
    stacked = plain.collate_fn([plain.train_dataset[i] for i in indices])
    for key, value in batch.items():
        torch.testing.assert_close(stacked[key], value, rtol=0, atol=1e-6)


def test_val_episodes_are_held_out(image_root: Path) -> None:
    module = data_module(image_root, val_episodes=[2, 5])
    lengths = json.loads((image_root / "meta" / "info.json").read_text())["total_frames"]
    assert module.val_dataset is not None
    assert len(module.train_dataset) + len(module.val_dataset) == lengths
    assert module.info.extra["val_episodes"] == 2


def test_statistics_come_from_meta_stats_json(image_root: Path) -> None:
    module = data_module(image_root)
    recorded = json.loads((image_root / "meta" / "stats.json").read_text())["action"]
    stats = module.normalization_stats()["action"]
    for name in ("mean", "std", "min", "max"):
        torch.testing.assert_close(stats[name], torch.tensor(recorded[name], dtype=torch.float32))


def test_actions_are_min_max_normalized(image_root: Path) -> None:
    dataset = data_module(image_root, action_normalization="min_max").train_dataset
    actions = dataset.__getitems__(list(range(len(dataset))))["action"]
    assert actions.min() >= -1.0 - 1e-5
    assert actions.max() <= 1.0 + 1e-5


def test_info_names_roles_shapes_and_the_task(image_root: Path) -> None:
    info = data_module(image_root, image_keys=[IMAGE]).info
    assert {k: (f.shape, f.role) for k, f in info.features.items()} == {
        "observation.state": ((4,), "state"),
        IMAGE: ((3, 16, 16), "image"),
        "action": ((2,), "action"),
    }
    assert info.task == "avoid_obstacle"
    assert get_task(info.task, **info.extra["task_options"]).options() == get_task("avoid_obstacle").options()


def test_augmentation_changes_training_images(image_root: Path) -> None:
    plain = fast_batch(data_module(image_root, image_keys=[IMAGE]), [0, 1, 2])
    augmentation = {"enabled": True, "blur_probability": 1.0}
    batch = fast_batch(data_module(image_root, image_keys=[IMAGE], augmentation=augmentation), [0, 1, 2])
    assert not torch.equal(plain[IMAGE], batch[IMAGE])
    assert torch.equal(plain["observation.state"], batch["observation.state"])


def test_offline_without_a_local_dataset_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"offline mode never downloads: set data.root .* or data.offline: false"):
        data_module(tmp_path / "absent")


def test_unknown_feature_lists_the_available_ones(image_root: Path) -> None:
    with pytest.raises(DataError, match=r"key 'observation.images.top': no such feature \(available: action, "):
        data_module(image_root, image_keys=["observation.images.top"])


def test_image_feature_as_state_is_refused(image_root: Path) -> None:
    with pytest.raises(DataError, match="list it in image_keys"):
        data_module(image_root, state_keys=[IMAGE])


def test_horizon_longer_than_every_episode(image_root: Path) -> None:
    with pytest.raises(DataError, match="horizon 500 is longer than every episode"):
        data_module(image_root, horizon=500)


def test_cli_demo_writes_a_dataset_lerobot_can_load(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vfp_il_components.cli import app

    root = tmp_path / "mix"
    result = CliRunner().invoke(app, ["demo", "mixture", str(root), "--format", "lerobot", "-n", "3"])
    assert result.exit_code == 0, result.output
    dataset = lerobot_dataset.LeRobotDataset("vfp/mixture", root=root)
    assert dataset.num_episodes == 3
    assert len(dataset) == 3 * 24


def test_cli_inspect_lists_lerobot_episode_lengths(image_root: Path) -> None:
    from typer.testing import CliRunner

    from vfp_il_components.cli import app

    result = CliRunner().invoke(app, ["inspect", str(image_root), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["format"] == "lerobot"
    assert len(summary["episode_lengths"]) == 6
    assert sum(summary["episode_lengths"].values()) == summary["frames"]


EXPERIMENT = """\
seed: 0
data: {{type: lerobot, repo_id: {repo}, root: {root}, image_keys: [observation.image], history: 2, horizon: 1,
        batch_size: 16, val_ratio: 0.2}}
model: {{net: {{arch: {{type: sample_linear}}}}}}
losses: {{fit: {{type: sample_huber}}}}
optimizers: {{default: {{type: sample_sgd, lr: 0.05}}}}
trainer: {{type: sample_regression}}
training: {{max_steps: 6, grad_clip_norm: null}}
evaluation: {{every: 0, max_batches: 2}}
checkpointing: {{every: 0}}
"""


def test_vfp_train_runs_a_few_steps_on_a_lerobot_dataset(image_root: Path, tmp_path: Path) -> None:
    (tmp_path / "exp.yaml").write_text(EXPERIMENT.format(repo=REPO, root=image_root))
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "vfp", "train", "exp.yaml", "--run-dir", str(run_dir), "--progress", "none"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=dict(os.environ), check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = torch.load(run_dir / "checkpoints" / "step_00000006.pt", map_location="cpu", weights_only=False)
    recorded = json.loads((image_root / "meta" / "stats.json").read_text())["action"]["mean"]
    torch.testing.assert_close(
        checkpoint["normalization"]["action"]["mean"], torch.tensor(recorded, dtype=torch.float32)
    )
