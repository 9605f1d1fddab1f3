"""The packaged cfg_vqvae_flow_matching configs validate and train a few steps through `vfp train`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vfp.config import load_experiment

NAMES = ["cfg_vqvae_flow_matching/exp1", "cfg_vqvae_flow_matching/exp2"]
FAST = [
    "training.max_steps=3",
    "optimizers.default.warmup_steps=1",
    "data.generate.episodes=12",
    "evaluation.episodes=4",  # the engine's final rollout in avoid_obstacle
]


@pytest.mark.parametrize("name", NAMES)
def test_packaged_config_validates(name: str) -> None:
    config = load_experiment(name).config
    assert config.trainer.type == "cfg_vqvae_flow_matching"


def test_exp1_shares_the_avoid_obstacle_data_steps_and_batch_size_of_the_base() -> None:
    config = load_experiment("cfg_vqvae_flow_matching/exp1").config
    base = load_experiment("naive_flow_matching_policy/exp1").config
    assert config.data == base.data
    assert config.training.max_steps == base.training.max_steps


def test_exp2_uses_image_observations() -> None:
    data = load_experiment("cfg_vqvae_flow_matching/exp2").config.data
    assert data.image_keys == ["image"]  # type: ignore[attr-defined]
    assert data.generate.images  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", NAMES)
def test_packaged_config_trains_a_few_steps(name: str, tmp_path: Path) -> None:
    data = f"data.path={tmp_path / 'demo.hdf5'}"
    run = tmp_path / "run"
    command = [sys.executable, "-m", "vfp", "train", name, *FAST, data, "--run-dir", str(run)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 3
