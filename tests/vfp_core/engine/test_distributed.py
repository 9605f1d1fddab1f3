"""Data parallelism: sharded sampling, and 2 gloo processes against 1 process with the same global batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from engine_helpers import final_weights, run, sample_config, vfp_cli

from vfp.engine.sampler import ShardedBatchSampler

COMMON = (
    "model.net.arch.hidden=8",
    "optimizers.default.momentum=0.9",
    "data.num_samples=128",
    "logging.every=1",
    "training.grad_clip_norm=0.5",
    "logging.callbacks=[{type: jsonl}]",
)


def test_shards_of_two_processes_make_up_the_single_process_batch() -> None:
    single = ShardedBatchSampler(50, 8, seed=4)
    rank0 = ShardedBatchSampler(50, 4, seed=4, rank=0, world_size=2)
    rank1 = ShardedBatchSampler(50, 4, seed=4, rank=1, world_size=2)
    for position in range(12):  # crosses two epoch boundaries (6 global batches per epoch)
        assert rank0.indices(position).tolist() + rank1.indices(position).tolist() == single.indices(position).tolist()


def test_sampler_epochs_are_permutations_without_repeats() -> None:
    sampler = ShardedBatchSampler(24, 4, seed=0)
    epoch = [i for position in range(6) for i in sampler.indices(position).tolist()]
    assert sorted(epoch) == list(range(24))
    assert sampler.indices(0).tolist() != sampler.indices(6).tolist()  # the next epoch is reshuffled


def test_sampler_resumes_mid_stream() -> None:
    whole = iter(ShardedBatchSampler(40, 4, seed=1))
    batches = [next(whole) for _ in range(15)]
    resumed = iter(ShardedBatchSampler(40, 4, seed=1, start=9))
    assert [next(resumed) for _ in range(6)] == batches[9:]


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path: Path) -> None:
    run(sample_config(*COMMON, "data.batch_size=16", "training.max_steps=5"), tmp_path / "one")
    result = vfp_cli(
        "train",
        "sample/regression",
        *COMMON,
        "data.batch_size=8",
        "--max-steps",
        "5",
        "--nproc",
        "2",
        "--run-dir",
        str(tmp_path / "two"),
        "--progress",
        "plain",
    )
    assert result.returncode == 0, result.stderr
    one, two = final_weights(tmp_path / "one")["net"], final_weights(tmp_path / "two")["net"]
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-6)
    one_log, two_log = train_records(tmp_path / "one"), train_records(tmp_path / "two")
    assert [r["step"] for r in two_log] == [1, 2, 3, 4, 5]  # rank 0 alone writes the log
    assert all(r["grad_norm"] > 0 for r in two_log)  # the weights really moved
    for mine, theirs in zip(two_log, one_log, strict=True):  # logged values are averaged over processes
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5)


def train_records(run_dir: Path) -> list[dict[str, float]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [record for record in map(json.loads, lines) if record["split"] == "train"]
