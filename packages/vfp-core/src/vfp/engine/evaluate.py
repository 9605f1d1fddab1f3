"""Evaluation: validation losses, sampled-action error and the trainer's own metrics.

Used by the training loop (periodic evaluation on the held-out split) and by ``vfp eval``
(:func:`evaluate_checkpoint`). Evaluation runs under its own seeded random state, so evaluating
never changes the random stream of training.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vfp.engine.checkpoint import capture_rng_state, load_latest_checkpoint, policy_weights, restore_rng_state
from vfp.engine.runtime import autocast, derive_seed
from vfp.engine.sampler import sequential_batches
from vfp.engine.trainer import EvaluatingTrainer, EvaluationRequest, Trainer
from vfp.protocols import Batch, DataModule

if TYPE_CHECKING:
    from vfp._plugins import PluginHost

__all__ = ["EvaluationReport", "evaluate_checkpoint", "run_evaluation"]

EVAL_STREAM = 2


def _batch_size(batch: Batch) -> int:
    for value in batch.values():
        if isinstance(value, torch.Tensor) and value.ndim > 0:
            return int(value.shape[0])
    return 1


def _action_mse(trainer: Trainer, batch: Batch, steps: int | None) -> torch.Tensor | None:
    """Mean squared error of sampled action chunks against the batch's, over unpadded steps.

    None when the batch has no actions or the trainer does not sample actions (``samples_actions =
    False``, e.g. an estimator that only analyses another policy's latent).
    """
    target = batch.get("action")
    if target is None or not getattr(trainer, "samples_actions", True):
        return None
    observation = {k: v for k, v in batch.items() if k.startswith("observation.")}
    predicted = trainer.sample_actions(observation, steps)
    if predicted.shape != target.shape:
        raise ValueError(
            f"sample_actions returned shape {tuple(predicted.shape)}, expected the batch's action shape "
            f"{tuple(target.shape)}"
        )
    error = (predicted.float() - target.float()).pow(2).mean(dim=-1)
    pad = batch.get("action_is_pad")
    if pad is not None:
        valid = (~pad.bool()).float()
        return (error * valid).sum() / valid.sum().clamp_min(1.0)
    return error.mean()


@torch.no_grad()
def run_evaluation(
    trainer: Trainer,
    data: DataModule,
    *,
    device: torch.device,
    precision: str,
    seed: int,
    step: int,
    max_batches: int | None = None,
    steps: int | None = None,
) -> dict[str, float]:
    """Evaluate the current weights (the caller puts the models in eval mode with the policy weights).

    Returns ``loss`` and each loss term averaged over held-out batches, ``action_mse`` between
    sampled and held-out action chunks, and whatever the trainer's ``evaluate`` reports.
    """
    val = data.val_dataset

    def batches() -> Iterator[Batch]:
        if val is None:
            return iter(())
        return sequential_batches(val, data.collate_fn, data.batch_size, device, max_batches)

    saved = capture_rng_state()
    stream_seed = derive_seed(seed, EVAL_STREAM, step)
    torch.manual_seed(stream_seed)
    try:
        metrics: dict[str, float] = {}
        sums: dict[str, torch.Tensor] = {}
        count = 0
        for batch in batches():
            weight = _batch_size(batch)
            with autocast(device, precision):
                output = trainer.compute_losses(batch)
                terms, extra = output[0], output[1]
                values: dict[str, Any] = {"loss": sum(t.float() for t in terms.values())}
                values.update({name: t.float() for name, t in terms.items()})
                values.update(extra)
                mse = _action_mse(trainer, batch, steps)
            if mse is not None:
                values["action_mse"] = mse
            for key, value in values.items():
                number = torch.as_tensor(value).detach().double().cpu() * weight
                sums[key] = sums[key] + number if key in sums else number
            count += weight
        if count:
            metrics.update({key: float(total) / count for key, total in sums.items()})
        if isinstance(trainer, EvaluatingTrainer):
            generator = torch.Generator().manual_seed(stream_seed)
            request = EvaluationRequest(batches=batches, steps=steps, step=step, generator=generator)
            with autocast(device, precision):
                metrics.update({key: float(value) for key, value in trainer.evaluate(request).items()})
    finally:
        restore_rng_state(saved)
    return metrics


@dataclass(frozen=True)
class EvaluationReport:
    """What ``vfp eval`` reports for one checkpoint."""

    checkpoint: Path
    step: int
    metrics: Mapping[str, float]
    weights: str
    """``ema`` or ``models``: which weights were evaluated."""


def evaluate_checkpoint(
    location: Path,
    *,
    steps: int | None = None,
    device: str | None = None,
    max_batches: int | None = None,
    host: PluginHost | None = None,
) -> EvaluationReport:
    """Load a checkpoint (or a run directory's latest) and evaluate its policy on held-out data."""
    from vfp._plugins import get_host
    from vfp.config import validate_data
    from vfp.engine.session import build_trainer_for_evaluation

    host = host or get_host()
    path, payload = load_latest_checkpoint(location)
    config = validate_data(payload["config"], host.registry, f"{path} (config saved in the checkpoint)")
    if device is not None:
        config = config.model_copy(update={"device": device})
    built = build_trainer_for_evaluation(config, payload, host, config_file=str(path))
    weights = "ema" if payload.get("ema") else "models"
    for name, state in policy_weights(payload).items():
        built.models[name].load_state_dict(state)
    built.models.eval()
    metrics = run_evaluation(
        built.trainer,
        built.data,
        device=built.device,
        precision=config.precision,
        seed=config.seed,
        step=int(payload["step"]),
        max_batches=max_batches if max_batches is not None else config.evaluation.max_batches,
        steps=steps,
    )
    return EvaluationReport(checkpoint=path, step=int(payload["step"]), metrics=metrics, weights=weights)
