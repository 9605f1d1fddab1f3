"""Config models of the dataloaders: light, strict, and usable without the optional lerobot library."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from vfp_il_components.data.specs import SPECS, HDF5DataConfig, ImageAugmentationConfig, LeRobotDataConfig

LEROBOT_INSTALLED = importlib.util.find_spec("lerobot") is not None


def test_both_dataloaders_are_registered() -> None:
    assert {(str(spec.kind), spec.name) for spec in SPECS} == {("dataloader", "hdf5"), ("dataloader", "lerobot")}


def test_unknown_keys_are_errors() -> None:
    with pytest.raises(ValidationError, match="horizn"):
        HDF5DataConfig(type="hdf5", path="x.h5", horizn=4)  # type: ignore[call-arg]


def test_a_key_cannot_be_state_and_image() -> None:
    with pytest.raises(ValidationError, match="both state and image"):
        HDF5DataConfig(type="hdf5", path="x.h5", state_keys=["cam"], image_keys=["cam"])


def test_lerobot_action_cannot_also_be_an_observation() -> None:
    with pytest.raises(ValidationError, match="more than one role"):
        LeRobotDataConfig(type="lerobot", repo_id="a/b", state_keys=["action"])


def test_generate_names_the_available_tasks() -> None:
    with pytest.raises(ValidationError, match="mixture, avoid_obstacle, ordered_subgoals"):
        HDF5DataConfig(type="hdf5", path="x.h5", generate={"task": "juggle"})


def test_blur_kernel_must_be_odd() -> None:
    with pytest.raises(ValidationError, match="blur_kernel must be odd"):
        ImageAugmentationConfig(blur_kernel=4)


@pytest.mark.skipif(LEROBOT_INSTALLED, reason="lerobot is installed here")
def test_building_lerobot_without_the_library_says_what_to_install() -> None:
    from vfp_il_components.data.lerobot import build_lerobot_data

    with pytest.raises(ImportError, match=r'pip install "vfp-il-components\[lerobot\]"'):
        build_lerobot_data(LeRobotDataConfig(type="lerobot", repo_id="lerobot/pusht"))


EXPERIMENT = """\
data: {type: lerobot, repo_id: lerobot/pusht, image_keys: [observation.image], history: 2, horizon: 8}
model: {net: {arch: {type: sample_linear}}}
losses: {fit: {type: sample_huber}}
optimizers: {default: {type: sample_sgd}}
trainer: {type: sample_regression}
"""


def test_lerobot_experiment_validates_without_importing_lerobot(tmp_path: Path) -> None:
    (tmp_path / "exp.yaml").write_text(EXPERIMENT)
    probe = (
        "import sys\n"
        "from vfp.cli import main\n"
        f"try:\n    main(['config', 'validate', {str(tmp_path / 'exp.yaml')!r}])\n"
        "except SystemExit as exc:\n    code = exc.code\nelse:\n    code = 0\n"
        "print('HEAVY=' + ','.join(m for m in ('lerobot', 'torch', 'h5py') if m in sys.modules), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "HEAVY=\n" in result.stderr
