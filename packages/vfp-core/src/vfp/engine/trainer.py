"""The trainer protocol: what a ``trainer`` component provides, and the context it is built with.

A trainer component's ``target`` is called as ``target(config, context)`` with its validated config
and a :class:`TrainerContext`. It builds its model components through the context and returns an
object that satisfies :class:`Trainer`. The engine owns everything else: the loop, devices and
precision, optimizers, EMA, checkpoints, logging and distribution.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

import torch
from torch import nn

from vfp.protocols import Batch, DataInfo, NormalizationStats

if TYPE_CHECKING:
    from vfp.config import ExperimentConfig

__all__ = [
    "EvaluatingTrainer",
    "EvaluationRequest",
    "LossOutput",
    "MetricValue",
    "StatefulTrainer",
    "Trainer",
    "TrainerContext",
    "samples_actions",
    "trainer_state",
]

MetricValue = float | torch.Tensor
"""A metric: a Python number, or a scalar tensor the engine reads only when it logs (no sync per step)."""


class LossOutput(NamedTuple):
    """What :meth:`Trainer.compute_losses` returns.

    ``terms`` are scalar tensors that the engine sums into the loss it back-propagates (each already
    weighted); each is logged under its name. ``metrics`` are logged as they are and never
    back-propagated. A plain ``(terms, metrics)`` tuple is accepted too.
    """

    terms: Mapping[str, torch.Tensor]
    metrics: Mapping[str, MetricValue] = {}


@dataclass(frozen=True)
class EvaluationRequest:
    """What the engine hands to :meth:`EvaluatingTrainer.evaluate`.

    The model components already hold the weights to evaluate (the EMA or schedule-free averaged
    weights when those are in use) and are in eval mode; gradients are off.
    """

    batches: Callable[[], Iterator[Batch]]
    """Return a fresh iterator over held-out batches, on the run's device (empty without a split)."""
    steps: int | None
    """Integration steps to sample with (``vfp eval --steps N``); None: the trainer's default."""
    step: int
    """Training step of the weights being evaluated."""
    generator: torch.Generator
    """A seeded CPU generator for evaluation randomness that must not depend on training."""


@runtime_checkable
class Trainer(Protocol):
    """The experiment-specific part of training, provided by a ``trainer`` component.

    Build it as ``target(config, context)``. Every trainable module must come from
    ``context.build_model(name, **dims)``: those are the modules the engine optimizes, averages,
    saves and wraps for data parallelism.
    """

    samples_actions: bool
    """False for a trainer that cannot sample actions (an estimator that analyses another policy);
    evaluation then skips the sampled-action error. A trainer without the attribute samples actions
    (contract 1.0); read it with :func:`samples_actions`."""

    def compute_losses(self, batch: Batch) -> LossOutput | tuple[Mapping[str, torch.Tensor], Mapping[str, MetricValue]]:
        """Return the named loss terms (scalar tensors, summed by the engine) and metrics for a batch.

        The batch is on the run's device and normalized by the data module; the call runs under
        the run's autocast. A non-finite term stops the run with its name and step.
        """
        ...

    def sample_actions(self, observation: Batch, steps: int | None = None) -> torch.Tensor:
        """Sample action chunks ``(B, horizon, action_dim)`` for a batch of observations.

        Actions are in the normalized space of the batches (unnormalize them with
        ``context.normalization_stats``). ``steps`` is the number of integration steps (None: the
        trainer's default).

        Contract 1.1: a trainer may also accept a keyword ``noise: torch.Tensor | None = None``, the
        initial sample ``x0`` of shape ``(B, horizon, action_dim)`` for flow policies (None: drawn by
        the trainer). Callers pass it only to trainers whose ``sample_actions`` accepts it; a trainer
        that does not take it stays valid.
        """
        ...


def samples_actions(trainer: object) -> bool:
    """Whether a trainer samples actions (its ``samples_actions``; True when it does not say)."""
    return bool(getattr(trainer, "samples_actions", True))


@runtime_checkable
class EvaluatingTrainer(Protocol):
    """A trainer with its own evaluation metrics (closed-loop success, mode coverage, ...)."""

    def evaluate(self, request: EvaluationRequest) -> Mapping[str, float]:
        """Return evaluation metrics; merged with the engine's validation losses."""
        ...


@runtime_checkable
class StatefulTrainer(Protocol):
    """A trainer with state outside its model components (saved in checkpoints).

    ``state_dict`` must hold only tensors and primitive containers: checkpoints are read with
    ``torch.load(weights_only=True)``. Detect it with :func:`trainer_state`.
    """

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


def trainer_state(trainer: object) -> StatefulTrainer | None:
    """The trainer as a :class:`StatefulTrainer` when it keeps state of its own, else None.

    The one test of trainer state used by training, checkpoints and evaluation. A trainer that is an
    ``nn.Module`` has ``state_dict`` too, but its state is its model components, saved already.
    """
    if isinstance(trainer, StatefulTrainer) and not isinstance(trainer, nn.Module):
        return trainer
    return None


ModelBuilder = Callable[[str, dict[str, Any]], nn.Module]
LossBuilder = Callable[[str], nn.Module]


@dataclass
class TrainerContext:
    """What a trainer is built with: the experiment, the data's shape, and builders for its parts.

    The engine creates it; a trainer keeps it (``context.step`` advances during training).
    """

    config: ExperimentConfig
    """The whole validated experiment (the trainer's own section is also its first argument)."""
    info: DataInfo
    """Features, history, horizon and task of the data."""
    normalization_stats: NormalizationStats
    """Statistics the data was normalized with, on ``device`` (saved with checkpoints)."""
    device: torch.device
    build_model_fn: ModelBuilder = field(repr=False)
    build_loss_fn: LossBuilder = field(repr=False)
    models: nn.ModuleDict = field(default_factory=nn.ModuleDict)
    """The model components built so far, by name (owned by the engine)."""
    losses: dict[str, nn.Module] = field(default_factory=dict)
    """The loss components built so far, by name."""
    step: int = 0
    """Optimizer steps completed so far (for schedules inside the trainer)."""
    is_main: bool = True
    """True in the process that logs and writes (rank 0)."""
    world_size: int = 1

    @property
    def model_names(self) -> list[str]:
        """Names of the model components defined in the config (``model:`` section)."""
        return list(self.config.model)

    @property
    def loss_names(self) -> list[str]:
        """Names of the loss components defined in the config (``losses:`` section)."""
        return list(self.config.losses)

    def has_model(self, name: str) -> bool:
        return name in self.config.model

    def has_loss(self, name: str) -> bool:
        return name in self.config.losses

    def build_model(self, name: str, **dims: Any) -> nn.Module:
        """Build model component ``name`` from its ``model.<name>`` config with these dimensions.

        The engine applies the component's ``init`` scheme, ``init_from`` weights and ``freeze``
        flag, moves it to the device and registers it in ``models``. Build each name once.
        """
        if name in self.models:
            raise ValueError(f"model component {name!r} was already built; build each component once")
        module = self.build_model_fn(name, dims)
        self.models[name] = module
        return module

    def build_loss(self, name: str) -> nn.Module:
        """Build loss component ``name`` from its ``losses.<name>`` config (on the device)."""
        if name not in self.losses:
            self.losses[name] = self.build_loss_fn(name)
        return self.losses[name]
