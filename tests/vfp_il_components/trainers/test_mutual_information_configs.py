"""The packaged mutual_information_estimator configs validate, train a few steps, and `vfp eval` reports MI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vfp.config import load_experiment

NAMES = ["mutual_information_estimator/exp1", "mutual_information_estimator/exp2"]
FAST = [
    "training.max_steps=3",
    "optimizers.default.warmup_steps=1",
    "data.generate.episodes=12",
    "trainer.mode_probe.samples=64",
    "trainer.mode_probe.fit_steps=10",
]


@pytest.mark.parametrize("name", NAMES)
def test_packaged_config_validates(name: str) -> None:
    config = load_experiment(name).config
    assert config.trainer.type == "mutual_information_estimator"


def test_exp1_uses_the_same_data_and_steps_as_the_other_exp1_configs() -> None:
    config = load_experiment("mutual_information_estimator/exp1").config
    base = load_experiment("naive_flow_matching_policy/exp1").config
    assert config.data == base.data
    assert config.training.max_steps == base.training.max_steps


@pytest.mark.parametrize("name", NAMES)
def test_packaged_config_trains_and_evaluates(name: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    data = f"data.path={tmp_path / 'demo.hdf5'}"
    train = [sys.executable, "-m", "vfp", "train", name, *FAST, data, "--run-dir", str(run)]
    result = subprocess.run(train, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    evaluate = subprocess.run(
        [sys.executable, "-m", "vfp", "eval", str(run), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert evaluate.returncode == 0, evaluate.stdout + evaluate.stderr
    metrics = json.loads(evaluate.stdout[evaluate.stdout.index("{") : evaluate.stdout.rindex("}") + 1])
    assert metrics["mi/infonce_ceiling_nats"] > 0
    assert "mi/conditional_infonce_nats" in metrics
    assert "mode_probe/accuracy" in metrics
