"""A :class:`Policy` around a trainer in memory: what the engine's closed-loop evaluation rolls out.

During training the engine evaluates the current policy weights (EMA or schedule-free averages,
swapped in by the loop) through the very runtime that deployment uses, without writing or reading
a checkpoint: :func:`policy_from_trainer` wraps the live trainer with the run's normalization
statistics and data description.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from vfp.policy.loading import PolicyLoadError, normalization_modes
from vfp.policy.metadata import FeatureSpec, PolicyMetadata
from vfp.policy.runtime import Policy
from vfp.protocols import DataInfo, NormalizationStats

if TYPE_CHECKING:
    from vfp.config import ExperimentConfig

__all__ = ["default_action_steps", "policy_from_trainer"]


def _option(section: object, *names: str) -> Any:
    for name in names:
        section = getattr(section, name, None)
    return section


def default_action_steps(config: ExperimentConfig, horizon: int) -> int:
    """``evaluation.action_steps``, else the trainer's ``evaluation.action_steps``, else the whole horizon."""
    chosen = config.evaluation.action_steps or _option(config.trainer, "evaluation", "action_steps") or horizon
    return int(chosen)


def policy_from_trainer(
    trainer: Any,
    *,
    config: ExperimentConfig,
    info: DataInfo,
    normalization_stats: NormalizationStats,
    device: torch.device,
    step: int,
    weights: str = "models",
    action_steps: int | None = None,
    steps: int | None = None,
    seed: int | None = None,
    metrics: Mapping[str, float] | None = None,
) -> Policy:
    """The :class:`Policy` of a trainer whose models hold the weights to evaluate (nothing is copied).

    ``action_steps``: actions of each chunk that ``act`` plays (None: :func:`default_action_steps`).
    ``steps``: integration steps (None: the trainer's). ``seed``: seeds the policy's generator (only
    for trainers whose ``sample_actions`` takes ``generator``).
    """
    horizon = info.horizon
    chosen = action_steps if action_steps is not None else default_action_steps(config, horizon)
    if not 1 <= chosen <= horizon:
        raise PolicyLoadError(f"action_steps must be between 1 and the horizon {horizon}, got {chosen}")
    integration = _option(config.trainer, "flow", "num_steps")
    fps = info.fps
    metadata = PolicyMetadata(
        trainer=config.trainer.type,
        features={key: FeatureSpec(tuple(f.shape), f.role) for key, f in info.features.items()},
        history=info.history,
        horizon=horizon,
        action_steps=int(chosen),
        fps=float(fps) if isinstance(fps, int | float) else None,
        step=step,
        weights=weights,
        normalization=normalization_modes(info, normalization_stats),
        integration_steps=int(integration) if isinstance(integration, int) else None,
        task=info.task,
        metrics=dict(metrics or {}),
        source="the training run (live weights)",
    )
    return Policy(
        trainer,
        info=info,
        normalization_stats=normalization_stats,
        metadata=metadata,
        device=device,
        precision=config.precision,
        steps=steps,
        seed=seed,
    )
