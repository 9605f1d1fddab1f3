"""`vfp data demo` and `vfp data inspect`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
from typer.testing import CliRunner

from vfp_il_components.cli import app

runner = CliRunner()


def test_demo_writes_an_hdf5_dataset_of_the_task(tmp_path: Path) -> None:
    out = tmp_path / "mix.h5"
    result = runner.invoke(app, ["demo", "mixture", str(out), "--episodes", "5", "--seed", "2", "-o", "num_modes=4"])
    assert result.exit_code == 0, result.output
    with h5py.File(out) as file:
        assert len(file["data"]) == 5
        assert file.attrs["vfp_task"] == "mixture"
        assert json.loads(file.attrs["vfp_task_options"])["num_modes"] == 4
        assert 0 <= int(file["data/demo_0"].attrs["vfp_mode"]) < 4


def test_demo_with_images_writes_uint8_hwc(tmp_path: Path) -> None:
    out = tmp_path / "img.h5"
    result = runner.invoke(app, ["demo", "avoid_obstacle", str(out), "-n", "2", "--images", "--image-size", "16"])
    assert result.exit_code == 0, result.output
    with h5py.File(out) as file:
        image = file["data/demo_0/obs/image"]
        assert image.dtype == "uint8"
        assert image.shape[1:] == (16, 16, 3)


def test_demo_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "d.h5"
    assert runner.invoke(app, ["demo", "mixture", str(out), "-n", "2"]).exit_code == 0
    again = runner.invoke(app, ["demo", "mixture", str(out), "-n", "3"])
    assert again.exit_code == 1
    assert "already exists" in again.output
    assert runner.invoke(app, ["demo", "mixture", str(out), "-n", "3", "--force"]).exit_code == 0
    with h5py.File(out) as file:
        assert len(file["data"]) == 3


def test_demo_unknown_task_lists_the_tasks(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "juggling", str(tmp_path / "x.h5")])
    assert result.exit_code == 2
    assert "mixture, avoid_obstacle, ordered_subgoals" in result.output


def test_demo_bad_task_option_is_reported(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "mixture", str(tmp_path / "x.h5"), "-o", "num_modes=1"])
    assert result.exit_code == 1
    assert "num_modes must be at least 2" in result.output


@pytest.fixture
def demo_file(tmp_path: Path) -> Path:
    out = tmp_path / "demo.h5"
    assert (
        runner.invoke(app, ["demo", "ordered_subgoals", str(out), "-n", "4", "--images", "--image-size", "8"]).exit_code
        == 0
    )
    return out


def test_inspect_json_reports_episodes_keys_shapes_and_stats(demo_file: Path) -> None:
    result = runner.invoke(app, ["inspect", str(demo_file), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["format"] == "hdf5"
    assert summary["episodes"] == 4
    assert summary["task"] == "ordered_subgoals"
    assert summary["frames"] == sum(summary["episode_lengths"].values())
    features = {f["key"]: f for f in summary["features"]}
    assert features["obs/state"]["shape"] == [11]
    assert features["obs/state"]["dtype"] == "float32"
    assert len(features["obs/state"]["stats"]["mean"]) == 11
    assert features["obs/image"]["kind"] == "image"
    assert features["obs/image"]["shape"] == [8, 8, 3]
    assert summary["filters"] == {"train": 3, "valid": 1}


def test_inspect_table_lists_features_and_episodes(demo_file: Path) -> None:
    result = runner.invoke(app, ["inspect", str(demo_file)])
    assert result.exit_code == 0, result.output
    for text in ("obs/state", "obs/image", "actions", "demo_3", "ordered_subgoals"):
        assert text in result.output


def test_inspect_missing_file_fails_with_its_name(tmp_path: Path) -> None:
    result = runner.invoke(app, ["inspect", str(tmp_path / "gone.h5")])
    assert result.exit_code == 2
    assert "gone.h5: file not found" in result.output


def test_inspect_reads_lerobot_metadata_without_the_library(tmp_path: Path) -> None:
    meta = tmp_path / "ds" / "meta"
    meta.mkdir(parents=True)
    features = {"observation.state": {"dtype": "float32", "shape": [4]}, "action": {"dtype": "float32", "shape": [2]}}
    (meta / "info.json").write_text(
        json.dumps({"fps": 10, "total_episodes": 3, "total_frames": 30, "features": features})
    )
    (meta / "stats.json").write_text(
        json.dumps({"action": {"mean": [0.5, 1.0], "std": [1, 1], "min": [0, 0], "max": [1, 2]}})
    )
    result = runner.invoke(app, ["inspect", str(tmp_path / "ds"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["format"], summary["episodes"], summary["frames"], summary["fps"]) == ("lerobot", 3, 30, 10)
    assert {f["key"]: f.get("stats", {}).get("mean") for f in summary["features"]} == {
        "observation.state": None,
        "action": [0.5, 1.0],
    }


def test_data_group_is_on_the_vfp_command_and_stays_light() -> None:
    probe = (
        "import sys\n"
        "from vfp.cli import main\n"
        "try:\n    main(['data', '--help'])\nexcept SystemExit as exc:\n    code = exc.code\n"
        "heavy = sorted(m for m in ('torch', 'numpy', 'h5py', 'lerobot') if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "demo" in result.stdout
    assert "inspect" in result.stdout
    assert "HEAVY=\n" in result.stderr
