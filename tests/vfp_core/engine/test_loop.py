"""The training loop through the public API, on the vfp-sample regression problem."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from engine_helpers import Recorder, final_weights, run, sample_config

from vfp.engine import NonFiniteLossError, RunDirectoryError
from vfp.engine.checkpoint import list_step_checkpoints, load_checkpoint


def val_loss_of(rec: Recorder) -> float:
    return rec.eval_metrics[max(rec.eval_metrics)]["loss"]


def test_training_fits_the_regression(tmp_path: Path, recorder: Recorder) -> None:
    result = run(sample_config("training.max_steps=150", "logging.every=10"), tmp_path / "run")
    assert result.status == "completed"
    assert result.exit_code == 0
    first, last = recorder.train_metrics[10]["loss"], recorder.train_metrics[150]["loss"]
    assert last < 0.2 * first
    assert val_loss_of(recorder) < 0.05


def test_metrics_jsonl_has_one_object_per_logged_step(tmp_path: Path) -> None:
    run(sample_config("training.max_steps=20", "logging.every=5", "evaluation.every=10"), tmp_path / "run")
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in records if r["split"] == "train"]
    val_steps = [r["step"] for r in records if r["split"] == "val"]
    assert train_steps == [5, 10, 15, 20]
    assert val_steps == [10, 20]
    assert {"loss", "fit", "mae", "lr/default"} <= records[0].keys()
    assert all(math.isfinite(r["loss"]) for r in records)


def test_tensorboard_logger_writes_scalars(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = sample_config("training.max_steps=6", "logging.every=2", "logging.callbacks=[{type: tensorboard}]")
    run(config, tmp_path / "run")
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6]
    assert [e.step for e in events.Scalars("val/loss")] == [6]


def test_lifecycle_hooks_arrive_in_order(tmp_path: Path, recorder: Recorder) -> None:
    config = sample_config("training.max_steps=4", "logging.every=2", "evaluation.every=2", "checkpointing.every=2")
    run(config, tmp_path / "run")
    assert recorder.events == [
        ("start", 0),
        ("step", 2),
        ("checkpoint", 2),  # the checkpoint first: an evaluation that fails never loses training
        ("evaluation", 2),
        ("step", 4),
        ("checkpoint", 4),
        ("evaluation", 4),
        ("end:completed", None),
    ]


def test_gradient_accumulation_matches_one_larger_batch(tmp_path: Path) -> None:
    common = ("training.max_steps=5", "optimizers.default.momentum=0.9", "model.net.arch.hidden=8")
    run(sample_config(*common, "data.batch_size=16"), tmp_path / "big")
    run(sample_config(*common, "data.batch_size=8", "training.grad_accum_steps=2"), tmp_path / "accum")
    big, accum = final_weights(tmp_path / "big"), final_weights(tmp_path / "accum")
    for key, value in big["net"].items():
        torch.testing.assert_close(accum["net"][key], value, rtol=1e-5, atol=1e-6)


def test_gradient_clipping_bounds_each_update(tmp_path: Path, recorder: Recorder) -> None:
    lr, clip = 0.05, 1e-3
    config = sample_config("training.max_steps=1", "logging.every=1", f"training.grad_clip_norm={clip}")
    run(config, tmp_path / "run")
    before, after = recorder.weights[0], recorder.weights[1]
    change = torch.cat([(after[k] - before[k]).flatten() for k in before]).norm()
    assert recorder.train_metrics[1]["grad_norm"] > 100 * clip  # clipping really had work to do
    assert change == pytest.approx(lr * clip, rel=1e-3)


def test_same_seed_same_weights_other_seed_other_weights(tmp_path: Path) -> None:
    common = ("training.max_steps=5", "model.net.arch.hidden=8", "model.net.arch.dropout=0.5")
    run(sample_config(*common, "seed=1"), tmp_path / "a")
    run(sample_config(*common, "seed=1"), tmp_path / "b")
    run(sample_config(*common, "seed=2"), tmp_path / "c")
    a, b, c = (final_weights(tmp_path / name)["net"] for name in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_deterministic_mode_is_on_during_the_run_and_restored_after(tmp_path: Path, recorder: Recorder) -> None:
    run(sample_config("training.max_steps=2", "deterministic=true"), tmp_path / "run")
    assert recorder.at_start["deterministic"] is True
    assert torch.are_deterministic_algorithms_enabled() is False


def test_bf16_precision_trains_under_cpu_autocast(tmp_path: Path, recorder: Recorder) -> None:
    config = sample_config("precision=bf16", "training.max_steps=60", "logging.every=10", "model.net.arch.hidden=16")
    result = run(config, tmp_path / "run")
    assert result.status == "completed"
    assert recorder.train_metrics[60]["loss"] < 0.5 * recorder.train_metrics[10]["loss"]
    weights = final_weights(tmp_path / "run")["net"]
    assert all(tensor.dtype == torch.float32 for tensor in weights.values())  # master weights stay fp32


def test_a_single_process_never_creates_a_process_group(tmp_path: Path, recorder: Recorder) -> None:
    run(sample_config("training.max_steps=1"), tmp_path / "run")
    assert recorder.at_start["process_group"] is False


def test_nan_loss_stops_naming_term_and_step_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    config = sample_config("trainer.nan_at_step=7", "checkpointing.every=5", "training.max_steps=20")
    result = run(config, tmp_path / "run")
    assert result.status == "failed"
    assert result.exit_code == 1
    assert "loss term 'fit' is nan at step 7" in result.message
    assert [step for step, _ in list_step_checkpoints(tmp_path / "run" / "checkpoints")] == [5]
    payload = load_checkpoint(tmp_path / "run" / "checkpoints" / "step_00000005.pt")
    assert all(torch.isfinite(t).all() for t in payload["models"]["net"].values())


def test_nan_error_names_the_step_it_would_have_been(tmp_path: Path) -> None:
    error = NonFiniteLossError("loss term 'fit'", 7, float("inf"))
    assert str(error) == "loss term 'fit' is inf at step 7"


def test_ema_follows_the_weights_with_its_decay(tmp_path: Path, recorder: Recorder) -> None:
    decay = 0.8
    config = sample_config(
        "training.max_steps=4", "logging.every=1", "training.ema.enabled=true", f"training.ema.decay={decay}"
    )
    run(config, tmp_path / "run")
    expected = {k: v.clone() for k, v in recorder.weights[0].items()}
    for step in range(1, 5):
        for key, live in recorder.weights[step].items():
            expected[key] = decay * expected[key] + (1 - decay) * live
    ema = final_weights(tmp_path / "run", "ema")["net"]
    for key, value in ema.items():
        torch.testing.assert_close(value, expected[f"net.{key}"], rtol=1e-5, atol=1e-6)


def test_evaluation_uses_the_ema_weights(tmp_path: Path, recorder: Recorder) -> None:
    from vfp.engine import evaluate_checkpoint

    config = sample_config("training.max_steps=30", "training.ema.enabled=true", "training.ema.decay=0.95")
    run(config, tmp_path / "run")
    logged = recorder.eval_metrics[30]["loss"]
    assert evaluate_checkpoint(tmp_path / "run").metrics["loss"] == pytest.approx(logged, rel=1e-6)
    ema, trained = final_weights(tmp_path / "run", "ema"), final_weights(tmp_path / "run")
    assert not torch.equal(ema["net"]["weight"], trained["net"]["weight"])


def test_schedule_free_checkpoints_hold_the_averaged_weights(tmp_path: Path) -> None:
    captured: dict[str, dict[str, torch.Tensor]] = {}

    class Capture:
        import vfp

        @vfp.hookimpl
        def vfp_on_checkpoint_saved(self, run: object, step: int, path: Path) -> None:
            models = run.models  # type: ignore[attr-defined]
            optimizer = run.optimizers["default"].optimizer  # type: ignore[attr-defined]
            captured["train"] = {k: v.clone() for k, v in models.state_dict().items()}
            optimizer.eval()
            captured["eval"] = {k: v.clone() for k, v in models.state_dict().items()}
            optimizer.train()
            models.load_state_dict(captured["train"])

    import vfp

    host = vfp._plugins.get_host()
    capture = Capture()
    host.register_object(capture, "capture")
    try:
        run(sample_config("training.max_steps=10", "optimizers.default.schedule_free=true"), tmp_path / "run")
    finally:
        host.unregister_object(capture)
    saved = final_weights(tmp_path / "run")["net"]
    assert torch.equal(saved["weight"], captured["eval"]["net.weight"])
    assert not torch.allclose(saved["weight"], captured["train"]["net.weight"])


def test_a_fresh_run_refuses_a_directory_that_holds_one(tmp_path: Path) -> None:
    run(sample_config("training.max_steps=1"), tmp_path / "run")
    with pytest.raises(RunDirectoryError, match="--resume"):
        run(sample_config("training.max_steps=1"), tmp_path / "run")


def test_dataloader_workers_give_the_same_training_as_in_process_fetching(tmp_path: Path) -> None:
    common = ("training.max_steps=6", "model.net.arch.hidden=8")
    run(sample_config(*common, "data.num_workers=0"), tmp_path / "inline")
    run(sample_config(*common, "data.num_workers=2"), tmp_path / "workers")
    inline, workers = final_weights(tmp_path / "inline")["net"], final_weights(tmp_path / "workers")["net"]
    assert all(torch.equal(inline[k], workers[k]) for k in inline)


def test_threads_setting_applies_during_the_run_and_is_restored(tmp_path: Path) -> None:
    import vfp

    seen: list[int] = []

    class ThreadProbe:
        @vfp.hookimpl
        def vfp_on_train_start(self, run: object) -> None:
            seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    host = vfp._plugins.get_host()
    probe = ThreadProbe()
    host.register_object(probe, "thread-probe")
    try:
        run(sample_config("training.max_steps=2", f"threads={wanted}"), tmp_path / "run")
    finally:
        host.unregister_object(probe)
    assert seen == [wanted]
    assert torch.get_num_threads() == before
