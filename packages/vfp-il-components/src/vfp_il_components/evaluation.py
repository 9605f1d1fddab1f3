"""Evaluating a policy trainer on the data's synthetic task, or offline without one (public; imports torch).

A trainer that samples normalized action chunks evaluates itself in one call::

    from vfp_il_components.evaluation import evaluate_policy

    def evaluate(self, request):
        return evaluate_policy(self.context, self.config.evaluation, request, self._sample, default_steps=10)

where ``self._sample(normalized_observation, steps, generator) -> normalized chunks (B, H, A)`` and
``self.config.evaluation`` is a :class:`ClosedLoopSettings` (from the light
:mod:`vfp_il_components.settings`, re-exported here). When ``context.info.task`` names a synthetic task the
policy runs in closed loop on it (success rate, mode entropy, off-manifold rate, per-mode frequencies,
...); otherwise an offline best-of-k action error on the held-out batches is reported.

The pieces are public too, for a custom protocol: :class:`ObservationCodec` (raw task observations into
the data's normalized space and sampled actions back), :func:`task_of`, :func:`task_policy` and
:func:`rollout_options`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import torch

from vfp.engine import EvaluationRequest, TrainerContext
from vfp.protocols import Batch
from vfp_il_components.data.normalization import normalize, unnormalize
from vfp_il_components.flow import ACTION_KEY, masked_mse, observation_of
from vfp_il_components.settings import ClosedLoopSettings

if TYPE_CHECKING:
    from vfp_il_components.tasks.base import RolloutOptions, Task

__all__ = [
    "ClosedLoopSettings",
    "ObservationCodec",
    "SampleFn",
    "evaluate_policy",
    "rollout_options",
    "task_of",
    "task_policy",
]

SampleFn = Callable[[Batch, int, torch.Generator | None], torch.Tensor]
"""``sample(normalized_observation, steps, generator) -> normalized action chunks (B, H, A)``."""


class ObservationCodec:
    """Maps raw (task) observations into the data's normalized space, and sampled actions back out."""

    def __init__(self, context: TrainerContext) -> None:
        self.context = context
        self.modes: Mapping[str, str] = dict(context.info.normalization)

    def _mode(self, key: str) -> str:
        return self.modes.get(key, "none" if key not in self.context.normalization_stats else "mean_std")

    def normalize_observation(self, observation: Mapping[str, torch.Tensor]) -> Batch:
        """Normalize the state features of raw observations as the data module does (images pass unchanged)."""
        features = self.context.info.features
        out: Batch = {}
        for key, value in observation.items():
            value = value.to(self.context.device)
            feature = features.get(key)
            if feature is not None and feature.role == "state":
                value = normalize(self.context.normalization_stats, key, value.float(), self._mode(key))
            out[key] = value
        return out

    def unnormalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Sampled (normalized) action chunks back to dataset units."""
        return unnormalize(self.context.normalization_stats, ACTION_KEY, actions.float(), self._mode(ACTION_KEY))


def task_of(context: TrainerContext) -> Task:
    """The synthetic task the data was generated from (``context.info.task`` with its saved options)."""
    from vfp_il_components.tasks import get_task

    info = context.info
    if info.task is None:
        raise ValueError("the data names no synthetic task (info.task is None): no closed-loop evaluation")
    return get_task(info.task, **dict(info.task_options))


def task_policy(
    context: TrainerContext, sample: SampleFn, steps: int, generator: torch.Generator | None = None
) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """A task policy (raw observations in, unnormalized action chunks out) around a normalized sampler."""
    codec = ObservationCodec(context)
    known = set(context.info.features)

    def policy(observation: dict[str, torch.Tensor]) -> torch.Tensor:
        wanted = {k: v for k, v in observation.items() if k in known or k.removesuffix("_is_pad") in known}
        return codec.unnormalize_actions(sample(codec.normalize_observation(wanted), steps, generator)).cpu()

    return policy


def rollout_options(context: TrainerContext, settings: ClosedLoopSettings) -> RolloutOptions:
    """The task rollout that matches the data (history, images) and ``settings`` (episodes, seed, re-planning)."""
    from vfp_il_components.tasks.base import RolloutOptions

    info = context.info
    image_features = [info.features[key] for key in info.keys("image")]
    return RolloutOptions(
        num_episodes=settings.episodes,
        seed=settings.seed,
        history=info.history,
        images=bool(image_features),
        image_size=int(image_features[0].shape[-1]) if image_features else 64,
        action_steps=settings.action_steps,
    )


def _closed_loop(
    context: TrainerContext,
    settings: ClosedLoopSettings,
    sample: SampleFn,
    steps: int,
    generator: torch.Generator,
) -> dict[str, float]:
    from vfp_il_components.tasks.metrics import normalized_entropy

    task = task_of(context)
    metrics = task.evaluate(task_policy(context, sample, steps, generator), rollout_options(context, settings))
    metrics["demo_mode_entropy"] = normalized_entropy(task.mode_weights)
    return metrics


def _offline(
    batches: Callable[[], Iterator[Batch]], settings: ClosedLoopSettings, sample: SampleFn, steps: int, generator: Any
) -> dict[str, float]:
    total, count = 0.0, 0
    for batch in batches():
        observation = observation_of(batch)
        target = batch[ACTION_KEY]
        errors = torch.stack(
            [
                masked_mse(sample(observation, steps, generator), target, batch.get(f"{ACTION_KEY}_is_pad"))
                for _ in range(settings.offline_samples)
            ]
        )
        total += float(errors.min(dim=0).values.sum())
        count += int(target.shape[0])
    if not count:
        return {}
    return {f"action_mse_best_of_{settings.offline_samples}": total / count}


def evaluate_policy(
    context: TrainerContext,
    settings: ClosedLoopSettings,
    request: EvaluationRequest,
    sample: SampleFn,
    default_steps: int,
) -> dict[str, float]:
    """Evaluate a sampler: closed loop on ``context.info.task`` when there is one, else offline.

    The closed-loop path is the 1.0 trainer-side evaluation: it keeps working with a
    DeprecationWarning; an experiment with ``evaluation.env`` is rolled out by the engine instead
    (docs/environments.md) and the engine does not call the trainer's ``evaluate``.

    ``sample`` gets normalized observations, the number of integration steps (``request.steps`` or
    ``default_steps``) and ``request.generator``; it returns normalized action chunks. The result also
    holds ``integration_steps``.
    """
    steps = request.steps if request.steps is not None else default_steps
    if context.info.task is not None:
        warnings.warn(
            "closed-loop evaluation inside the trainer (evaluate_policy) is deprecated and will be removed in "
            f"vfp-il-components 2.0: set `evaluation.env: {{type: {context.info.task}}}` in the experiment and the "
            "engine rolls the policy out (docs/environments.md)",
            DeprecationWarning,
            stacklevel=2,
        )
        metrics = _closed_loop(context, settings, sample, steps, request.generator)
    else:
        metrics = _offline(request.batches, settings, sample, steps, request.generator)
    metrics["integration_steps"] = float(steps)
    if math.isnan(metrics.get("sinkhorn", 0.0)):
        metrics.pop("sinkhorn")
    return metrics
