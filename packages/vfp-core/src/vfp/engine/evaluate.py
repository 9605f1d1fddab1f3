"""Evaluation: validation losses, sampled-action error, closed-loop rollouts and the trainer's own metrics.

Used by the training loop (periodic evaluation on the held-out split, and rollouts in
``evaluation.env`` through the deployment runtime: :func:`closed_loop_metrics`) and by ``vfp eval``
(:func:`evaluate_checkpoint`). Evaluation runs under its own seeded random state, so evaluating
never changes the random stream of training.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vfp.engine.checkpoint import capture_rng_state, read_latest_checkpoint, restore_rng_state
from vfp.engine.runtime import autocast, derive_seed
from vfp.engine.sampler import sequential_batches
from vfp.engine.trainer import EvaluatingTrainer, EvaluationRequest, Trainer, samples_actions
from vfp.protocols import Batch, DataModule

if TYPE_CHECKING:
    from vfp._plugins import PluginHost
    from vfp.config import ExperimentConfig
    from vfp.engine.trainer import TrainerContext

__all__ = ["EvaluationReport", "closed_loop_metrics", "evaluate_checkpoint", "run_evaluation"]

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
    if target is None or not samples_actions(trainer):
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
    trainer_evaluates: bool = True,
) -> dict[str, float]:
    """Evaluate the current weights (the caller puts the models in eval mode with the policy weights).

    Returns ``loss`` and each loss term averaged over held-out batches, ``action_mse`` between
    sampled and held-out action chunks, and whatever the trainer's ``evaluate`` reports
    (``trainer_evaluates=False``: its ``evaluate`` is not called, the engine rolls the policy out instead).
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
        if trainer_evaluates and isinstance(trainer, EvaluatingTrainer):
            generator = torch.Generator().manual_seed(stream_seed)
            request = EvaluationRequest(batches=batches, steps=steps, step=step, generator=generator)
            with autocast(device, precision):
                metrics.update({key: float(value) for key, value in trainer.evaluate(request).items()})
    finally:
        restore_rng_state(saved)
    return metrics


def engine_rolls_out(config: ExperimentConfig, trainer: Trainer) -> bool:
    """Whether the engine evaluates this run in closed loop (``evaluation.env`` set, a trainer that samples actions)."""
    return config.evaluation.env is not None and samples_actions(trainer)


def closed_loop_metrics(
    config: ExperimentConfig,
    trainer: Trainer,
    context: TrainerContext,
    *,
    device: torch.device,
    step: int,
    weights: str = "models",
    steps: int | None = None,
    host: PluginHost | None = None,
) -> dict[str, float]:
    """Roll the trainer's current weights out in ``evaluation.env`` through the deployment runtime.

    The trainer's models must hold the policy weights and be in eval mode (the loop swaps in the EMA
    or schedule-free averages). The policy is a :class:`vfp.policy.Policy` around the live trainer
    and the run's normalization statistics: what ``vfp.load_policy`` gives for the checkpoint of this
    step. Random draws come from a stream seeded by ``evaluation.seed``, so every evaluation sees the
    same episodes and noise, and the training stream is left as it was. ``{}`` when the run has no env.
    """
    from vfp.envs.evaluate import evaluate_in_env, evaluation_random_state
    from vfp.policy.live import policy_from_trainer

    evaluation = config.evaluation
    if not engine_rolls_out(config, trainer) or evaluation.env is None:
        return {}
    with evaluation_random_state(evaluation.seed):
        policy = policy_from_trainer(
            trainer,
            config=config,
            info=context.info,
            normalization_stats=context.normalization_stats,
            device=device,
            step=step,
            weights=weights,
            steps=steps,
        )
        result = evaluate_in_env(
            policy,
            evaluation.env,
            episodes=evaluation.episodes,
            seed=evaluation.seed,
            num_envs=evaluation.num_envs,
            max_episode_steps=evaluation.max_episode_steps,
            host=host,
        )
    return result.metrics()


def check_env_before_training(config: ExperimentConfig, trainer: Trainer, info: Any, host: PluginHost) -> None:
    """With ``evaluation.env``: build one environment and check it against the data's features, before step 1.

    An env that is not installed, cannot be built or does not observe what the policy needs is an
    :class:`vfp.envs.EnvError` now rather than at the first evaluation.
    """
    from vfp.envs import EnvError, check_env_for
    from vfp.policy.metadata import FeatureSpec

    if config.evaluation.env is None:
        return
    if not samples_actions(trainer):
        raise EnvError(
            f"evaluation.env is set but trainer {config.trainer.type!r} does not sample actions: "
            "there is no policy to roll out (remove evaluation.env)"
        )
    features = {key: FeatureSpec(tuple(f.shape), f.role) for key, f in info.features.items()}
    check_env_for(config.evaluation.env, features, host=host)


def rollout_during_training(
    config: ExperimentConfig,
    trainer: Trainer,
    context: TrainerContext,
    *,
    device: torch.device,
    step: int,
    weights: str,
    host: PluginHost,
    report: Callable[[str], None],
) -> dict[str, float]:
    """:func:`closed_loop_metrics` for the training loop: an env that raises mid-rollout is reported
    (with the episode and step, through ``report`` and a warning) and training goes on; the
    evaluation of this step then has no closed-loop metrics."""
    from vfp.envs import EnvRolloutError

    try:
        return closed_loop_metrics(config, trainer, context, device=device, step=step, weights=weights, host=host)
    except EnvRolloutError as exc:
        message = f"closed-loop evaluation at training step {step} failed: {exc}; training continues"
        report(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        return {}


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
    """Load a checkpoint (or a run directory's latest) and evaluate its policy on held-out data.

    ``host`` is the plugin host to build the components with (the command line passes the one it
    resolved; None: the process-wide host).
    """
    from vfp.config import validate_data
    from vfp.engine.options import resolve_host
    from vfp.engine.session import build_trainer_for_evaluation

    host = resolve_host(host)
    path, payload = read_latest_checkpoint(location)
    config = validate_data(payload.config, host.registry, f"{path} (config saved in the checkpoint)")
    if device is not None:
        config = config.model_copy(update={"device": device})
    built = build_trainer_for_evaluation(config, payload, host, config_file=str(path))
    for name, state in payload.policy_weights.items():
        built.models[name].load_state_dict(state)
    built.models.eval()
    rolls_out = engine_rolls_out(config, built.trainer)
    metrics = run_evaluation(
        built.trainer,
        built.data,
        device=built.device,
        precision=config.precision,
        seed=config.seed,
        step=payload.step,
        max_batches=max_batches if max_batches is not None else config.evaluation.max_batches,
        steps=steps,
        trainer_evaluates=not rolls_out,
    )
    weights = "ema" if payload.uses_ema else "models"
    if rolls_out:
        metrics.update(
            closed_loop_metrics(
                config,
                built.trainer,
                built.context,
                device=built.device,
                step=payload.step,
                weights=weights,
                steps=steps,
                host=host,
            )
        )
    return EvaluationReport(checkpoint=path, step=payload.step, metrics=metrics, weights=weights)
