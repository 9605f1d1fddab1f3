"""The checkpoint format: typed, versioned, and a checkpoint of format 1 (vfp-core before 1.1) still loads and resumes.

``data/checkpoint-v1-step6.pt`` was written by the engine of vfp-core 0.1.0 (contract 1.0, before TrainState
existed) with::

    run(sample_config(*STATEFUL, "training.max_steps=6"), run_dir)   # then checkpoints/step_00000006.pt

(STATEFUL from test_checkpoint.py: momentum, a warmup scheduler, dropout, a hidden layer and an EMA.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from engine_helpers import assert_weights_equal, final_weights, run, sample_config
from test_checkpoint import STATEFUL

from vfp.engine import CHECKPOINT_FORMAT, CheckpointError, CheckpointPayload, evaluate_checkpoint, read_checkpoint
from vfp.engine.checkpoint import load_checkpoint, policy_weights, save_checkpoint
from vfp.engine.resume import prepare_resume
from vfp.engine.state import READABLE_FORMATS

LEGACY = Path(__file__).parent / "data" / "checkpoint-v1-step6.pt"


def test_the_format_1_file_is_what_vfp_core_1_0_wrote() -> None:
    raw = torch.load(LEGACY, weights_only=True)
    assert raw["format"] == "vfp-checkpoint/1"
    assert "written_by" not in raw


def test_a_format_1_checkpoint_reads_into_the_typed_payload() -> None:
    payload = read_checkpoint(LEGACY)
    assert payload.format == "vfp-checkpoint/1"
    assert payload.step == 6
    assert payload.written_by == {}
    assert payload.sampler is not None
    assert payload.sampler.position == 6
    assert payload.optimizers["default"].scheduler is not None
    assert payload.uses_ema
    assert payload.policy_weights is payload.ema
    assert payload.data_info["features"]["action"]["shape"] == [2]
    assert len(payload.rng) == 1
    assert payload.rng_state(0, 1) is payload.rng[0]
    assert payload.rng_state(0, 2) is None


def test_a_format_1_checkpoint_resumes_bit_identically_to_an_uninterrupted_run(tmp_path: Path) -> None:
    run(sample_config(*STATEFUL, "training.max_steps=12"), tmp_path / "whole")
    split = tmp_path / "split" / "checkpoints"
    split.mkdir(parents=True)
    shutil.copy(LEGACY, split / LEGACY.name)
    config, point = prepare_resume(split / LEGACY.name, ["training.max_steps=12"])
    assert point.checkpoint.format == "vfp-checkpoint/1"
    result = run(config, tmp_path / "split", resume=point)
    assert result.status == "completed", result.message
    assert_weights_equal(final_weights(tmp_path / "whole"), final_weights(tmp_path / "split"))
    assert_weights_equal(final_weights(tmp_path / "whole", "ema"), final_weights(tmp_path / "split", "ema"))
    assert load_checkpoint(tmp_path / "split" / "checkpoints" / "step_00000012.pt")["format"] == CHECKPOINT_FORMAT


def test_a_format_1_checkpoint_evaluates() -> None:
    report = evaluate_checkpoint(LEGACY)
    assert report.step == 6
    assert report.weights == "ema"
    assert report.metrics["loss"] > 0


def test_a_new_checkpoint_is_format_2_and_round_trips(tmp_path: Path) -> None:
    run(sample_config("training.max_steps=2", "training.ema.enabled=true"), tmp_path / "run")
    path = tmp_path / "run" / "checkpoints" / "step_00000002.pt"
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == CHECKPOINT_FORMAT == READABLE_FORMATS[-1] == "vfp-checkpoint/2"
    assert raw["written_by"]["vfp-core"]
    assert {"task_options", "normalization", "fps", "train_episodes", "val_episodes"} <= raw["data_info"].keys()
    payload = CheckpointPayload.from_dict(raw, str(path))
    again = payload.to_dict()
    assert again.keys() == raw.keys()
    assert again["sampler"] == raw["sampler"]
    assert_weights_equal(policy_weights(raw), payload.policy_weights)


def test_a_checkpoint_of_an_unknown_format_is_refused_with_the_readable_ones(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 1, {"format": "vfp-checkpoint/99", "step": 1}, keep_last=1)
    with pytest.raises(
        CheckpointError, match=r"format 'vfp-checkpoint/99'.*readable: vfp-checkpoint/1, vfp-checkpoint/2"
    ):
        read_checkpoint(tmp_path / "step_00000001.pt")


def test_a_checkpoint_missing_an_entry_names_it(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 1, {"format": CHECKPOINT_FORMAT, "step": 1, "config": {}}, keep_last=1)
    with pytest.raises(CheckpointError, match=r"step_00000001\.pt .*damaged.*'models'"):
        read_checkpoint(tmp_path / "step_00000001.pt")
