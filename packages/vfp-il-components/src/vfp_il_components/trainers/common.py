"""Flow-matching machinery shared by the trainers: time distributions, the straight path, Euler/Heun
integration, observation and action (un)normalization, and policy evaluation.

Conventions: ``t = 0`` is the Gaussian source ``x0``, ``t = 1`` the (normalized) action chunk ``A``;
``x_t = (1 - t) x0 + t A`` and the target velocity is ``A - x0``. A velocity function is
``velocity(x (B, H, A), t (B,)) -> (B, H, A)``.

Evaluation (:func:`evaluate_policy`) runs the data's synthetic task in closed loop when
``context.info.task`` names one (success rate, mode entropy, off-manifold rate, per-mode
frequencies, ...), and otherwise reports an offline best-of-k action error on the held-out batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import torch

from vfp.engine import EvaluationRequest, TrainerContext
from vfp.protocols import Batch
from vfp_il_components.data.normalization import normalize, unnormalize
from vfp_il_components.trainers.specs import ClosedLoopSettings, FlowSettings

if TYPE_CHECKING:
    from vfp_il_components.tasks.base import Task

__all__ = [
    "ACTION_KEY",
    "ObservationCodec",
    "SampleFn",
    "VelocityFn",
    "evaluate_policy",
    "integrate",
    "masked_mse",
    "observation_of",
    "rollout_options",
    "sample_noise",
    "sample_times",
    "straight_path",
    "task_of",
    "task_policy",
]

ACTION_KEY = "action"
OBSERVATION_PREFIX = "observation."

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``velocity(x_t (B, H, A), t (B,)) -> (B, H, A)``."""

SampleFn = Callable[[Batch, int, torch.Generator | None], torch.Tensor]
"""``sample(normalized_observation, steps, generator) -> normalized action chunks (B, H, A)``."""


def observation_of(batch: Mapping[str, torch.Tensor]) -> Batch:
    """The ``observation.*`` entries of a batch (what a policy sees)."""
    return {key: value for key, value in batch.items() if key.startswith(OBSERVATION_PREFIX)}


def sample_times(
    settings: FlowSettings, batch: int, device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Training times ``(B,)`` in (0, 1) from ``settings.time_distribution``."""
    if settings.time_distribution == "uniform":
        t = torch.rand(batch, generator=generator)
    elif settings.time_distribution == "beta":
        # torch's Beta sampler has no generator argument: it draws from the global (seeded) stream
        alpha = torch.full((batch,), settings.beta_a)
        beta = torch.full((batch,), settings.beta_b)
        t = torch.distributions.Beta(alpha, beta).sample()
    else:
        normal = torch.randn(batch, generator=generator)
        t = torch.sigmoid(settings.logit_normal_mean + settings.logit_normal_std * normal)
    return t.clamp(1e-5, 1.0 - 1e-5).to(device)


def sample_noise(
    shape: tuple[int, ...], device: torch.device, std: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Gaussian source samples ``x0`` (drawn on the CPU with ``generator`` when given, for reproducibility)."""
    if generator is not None:
        return (std * torch.randn(shape, generator=generator)).to(device)
    return std * torch.randn(shape, device=device)


def straight_path(x0: torch.Tensor, actions: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_t, target velocity)`` on the straight path from ``x0`` to ``actions`` at times ``t`` (B,)."""
    tt = t.to(actions.dtype).reshape(-1, *([1] * (actions.ndim - 1)))
    return (1.0 - tt) * x0 + tt * actions, actions - x0


def integrate(velocity: VelocityFn, x0: torch.Tensor, steps: int, integrator: str = "euler") -> torch.Tensor:
    """Integrate ``dx/dt = velocity(x, t)`` from ``t = 0`` to ``1`` in ``steps`` equal steps.

    ``euler`` evaluates the velocity once per step; ``heun`` (explicit trapezoid) twice.
    """
    if steps < 1:
        raise ValueError(f"integration steps must be >= 1, got {steps}")
    if integrator not in ("euler", "heun"):
        raise ValueError(f"unknown integrator {integrator!r}; expected euler or heun")
    x = x0
    dt = 1.0 / steps
    batch = x0.shape[0]
    for i in range(steps):
        t = torch.full((batch,), i * dt, device=x.device, dtype=x.dtype)
        v = velocity(x, t)
        if integrator == "heun":
            predicted = x + dt * v
            v_next = velocity(predicted, t + dt)
            v = 0.5 * (v + v_next)
        x = x + dt * v
    return x


def masked_mse(predicted: torch.Tensor, target: torch.Tensor, is_pad: torch.Tensor | None) -> torch.Tensor:
    """Per-sample mean squared error ``(B,)`` over unpadded chunk steps."""
    error = (predicted.float() - target.float()).square().mean(dim=-1)
    if is_pad is None:
        return error.mean(dim=-1)
    valid = (~is_pad.bool()).float()
    return (error * valid).sum(dim=-1) / valid.sum(dim=-1).clamp_min(1.0)


class ObservationCodec:
    """Maps raw (task) observations into the data's normalized space, and sampled actions back out."""

    def __init__(self, context: TrainerContext) -> None:
        self.context = context
        self.modes: Mapping[str, str] = dict(context.info.extra.get("normalization", {}))

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
    return get_task(info.task, **dict(info.extra.get("task_options") or {}))


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


def rollout_options(context: TrainerContext, settings: ClosedLoopSettings) -> dict[str, Any]:
    """Keyword arguments of ``Task.evaluate``/``Task.rollout`` that match the data (history, images)."""
    info = context.info
    image_features = [info.features[key] for key in info.keys("image")]
    return {
        "num_episodes": settings.episodes,
        "seed": settings.seed,
        "history": info.history,
        "images": bool(image_features),
        "image_size": int(image_features[0].shape[-1]) if image_features else 64,
        "action_steps": settings.action_steps,
    }


def _closed_loop(
    context: TrainerContext,
    settings: ClosedLoopSettings,
    sample: SampleFn,
    steps: int,
    generator: torch.Generator,
) -> dict[str, float]:
    from vfp_il_components.tasks.metrics import normalized_entropy

    task = task_of(context)
    metrics = task.evaluate(task_policy(context, sample, steps, generator), **rollout_options(context, settings))
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

    ``sample`` gets normalized observations, the number of integration steps (``request.steps`` or
    ``default_steps``) and ``request.generator``; it returns normalized action chunks. The result also
    holds ``integration_steps``.
    """
    steps = request.steps if request.steps is not None else default_steps
    if context.info.task is not None:
        metrics = _closed_loop(context, settings, sample, steps, request.generator)
    else:
        metrics = _offline(request.batches, settings, sample, steps, request.generator)
    metrics["integration_steps"] = float(steps)
    if math.isnan(metrics.get("sinkhorn", 0.0)):
        metrics.pop("sinkhorn")
    return metrics
