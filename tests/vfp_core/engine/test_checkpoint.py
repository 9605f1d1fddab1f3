"""Checkpoint files, safe loading, and exact resume."""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from engine_helpers import assert_weights_equal, final_weights, run, sample_config

from vfp.engine import CheckpointError, load_checkpoint
from vfp.engine.checkpoint import (
    CHECKPOINT_FORMAT,
    atomic_write,
    capture_rng_state,
    find_checkpoint,
    list_step_checkpoints,
    restore_rng_state,
    save_checkpoint,
)
from vfp.engine.resume import prepare_resume

# momentum, a warmup scheduler, dropout (torch's generator), a hidden layer and an EMA: every
# piece of state that an exact resume has to restore
STATEFUL = (
    "model.net.arch.hidden=8",
    "model.net.arch.dropout=0.3",
    "optimizers.default.momentum=0.9",
    "optimizers.default.warmup_steps=5",
    "training.ema.enabled=true",
    "training.ema.decay=0.9",
    "training.grad_clip_norm=1.0",
    "data.num_samples=64",
    "data.batch_size=8",
    "checkpointing.every=4",
    "evaluation.every=3",
)


def resume(run_dir: Path, *overrides: str) -> None:
    config, point = prepare_resume(run_dir, overrides)
    result = run(config, run_dir, resume=point)
    assert result.status == "completed", result.message


def test_checkpoint_holds_everything_to_resume_and_loads_weights_only(tmp_path: Path) -> None:
    run(sample_config(*STATEFUL, "training.max_steps=4"), tmp_path / "run")
    path = tmp_path / "run" / "checkpoints" / "step_00000004.pt"
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == CHECKPOINT_FORMAT
    assert payload["step"] == 4
    assert payload["config"]["training"]["max_steps"] == 4
    assert payload["models"]["net"].keys() == payload["ema"]["net"].keys()
    assert {"optimizer", "scheduler"} <= payload["optimizers"]["default"].keys()
    assert payload["optimizers"]["default"]["scheduler"]["last_epoch"] == 4
    assert payload["sampler"]["position"] == 4
    assert {"python", "numpy", "torch"} <= payload["rng"][0].keys()
    assert set(payload["normalization"]) == {"observation.state", "action"}
    assert payload["data_info"]["features"]["action"]["shape"] == [2]


def test_keep_last_prunes_old_checkpoints_and_latest_names_the_newest(tmp_path: Path) -> None:
    run(sample_config("training.max_steps=10", "checkpointing.every=2", "checkpointing.keep_last=2"), tmp_path / "r")
    folder = tmp_path / "r" / "checkpoints"
    assert [step for step, _ in list_step_checkpoints(folder)] == [8, 10]
    assert (folder / "latest").read_text().strip() == "step_00000010.pt"
    assert find_checkpoint(tmp_path / "r") == folder / "step_00000010.pt"


def test_an_interrupted_write_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    target.write_bytes(b"good")

    def broken(handle: object) -> None:
        handle.write(b"partial")  # type: ignore[attr-defined]
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


class Arbitrary:
    """Stands for any class a malicious checkpoint could make torch.load instantiate."""


def test_a_checkpoint_with_arbitrary_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "step": 1, "payload": Arbitrary()}, path)
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(path)


def test_a_truncated_newest_checkpoint_falls_back_to_the_previous(tmp_path: Path) -> None:
    run(sample_config("training.max_steps=4", "checkpointing.every=2"), tmp_path / "run")
    newest = tmp_path / "run" / "checkpoints" / "step_00000004.pt"
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.warns(UserWarning, match="using the previous checkpoint"):
        _, point = prepare_resume(tmp_path / "run", ["training.max_steps=6"])
    assert point.payload["step"] == 2


def test_rng_states_round_trip() -> None:
    state = capture_rng_state()
    first = (random.random(), np.random.rand(), torch.rand(3))
    restore_rng_state(pickle.loads(pickle.dumps(state)))
    second = (random.random(), np.random.rand(), torch.rand(3))
    assert first[:2] == second[:2]
    assert torch.equal(first[2], second[2])


def test_save_checkpoint_writes_no_temporary_files(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 3, {"format": CHECKPOINT_FORMAT, "step": 3}, keep_last=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step_00000003.pt"]


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path: Path) -> None:
    run(sample_config(*STATEFUL, "training.max_steps=12"), tmp_path / "whole")
    run(sample_config(*STATEFUL, "training.max_steps=6"), tmp_path / "split")
    resume(tmp_path / "split", "training.max_steps=12")
    assert_weights_equal(final_weights(tmp_path / "whole"), final_weights(tmp_path / "split"))
    assert_weights_equal(final_weights(tmp_path / "whole", "ema"), final_weights(tmp_path / "split", "ema"))
    whole = load_checkpoint(find_checkpoint(tmp_path / "whole"))["optimizers"]["default"]["optimizer"]["state"]
    split = load_checkpoint(find_checkpoint(tmp_path / "split"))["optimizers"]["default"]["optimizer"]["state"]
    assert all(torch.equal(whole[i]["momentum_buffer"], split[i]["momentum_buffer"]) for i in whole)


def test_schedule_free_resume_is_bit_identical(tmp_path: Path) -> None:
    common = ("optimizers.default.schedule_free=true", "checkpointing.every=4", "model.net.arch.hidden=8")
    run(sample_config(*common, "training.max_steps=12"), tmp_path / "whole")
    run(sample_config(*common, "training.max_steps=8"), tmp_path / "split")
    resume(tmp_path / "split", "training.max_steps=12")
    assert_weights_equal(final_weights(tmp_path / "whole"), final_weights(tmp_path / "split"))


def test_resume_with_more_steps_extends_the_run(tmp_path: Path) -> None:
    run(sample_config("training.max_steps=3"), tmp_path / "run")
    resume(tmp_path / "run", "training.max_steps=7")
    payload = load_checkpoint(find_checkpoint(tmp_path / "run"))
    assert payload["step"] == 7
    assert payload["config"]["training"]["max_steps"] == 7
    assert "max_steps: 7" in (tmp_path / "run" / "config.yaml").read_text()


def test_resume_truncates_metrics_past_the_checkpoint(tmp_path: Path) -> None:
    import json

    run(sample_config("training.max_steps=6", "logging.every=1", "checkpointing.every=3"), tmp_path / "run")
    (tmp_path / "run" / "checkpoints" / "step_00000006.pt").unlink()
    (tmp_path / "run" / "checkpoints" / "latest").unlink()
    resume(tmp_path / "run", "training.max_steps=6")
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in records if r["split"] == "train"]
    assert train_steps == [1, 2, 3, 4, 5, 6]


def test_env_json_records_each_session(tmp_path: Path) -> None:
    import json

    run(sample_config("training.max_steps=2"), tmp_path / "run")
    resume(tmp_path / "run", "training.max_steps=3")
    env = json.loads((tmp_path / "run" / "env.json").read_text())
    assert len(env["previous"]) == 1
    assert env["torch"] == torch.__version__
    assert {"distribution": "vfp-sample", "version": "0.3.1"}.items() <= next(
        p for p in env["plugins"] if p["name"] == "sample"
    ).items()


def test_resuming_with_a_different_model_is_a_clear_error(tmp_path: Path) -> None:
    run(sample_config("training.max_steps=2"), tmp_path / "run")
    config, point = prepare_resume(tmp_path / "run", ["training.max_steps=4", "model.net.arch.hidden=16"])
    with pytest.raises(CheckpointError, match=r"step_00000002\.pt does not fit this config .*net"):
        run(config, tmp_path / "run", resume=point)
