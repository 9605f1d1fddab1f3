"""What the trainers' light config modules share: cross-check helpers and the flow trainers' base (no torch)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import Field

from vfp import TrainerConfig
from vfp_il_components.settings import ClosedLoopSettings, FlowSettings

__all__ = [
    "LATENT_TYPES",
    "VELOCITY_TYPES",
    "FlowTrainerConfig",
    "loss_type",
    "model_type",
    "require_loss",
    "require_model",
]

VELOCITY_TYPES = ("mlp", "chunk_transformer")
LATENT_TYPES = ("gaussian_encoder", "categorical_head")


def model_type(experiment: Any, name: str) -> str | None:
    """The architecture type of model component ``name`` in the experiment, or None without one."""
    model: Mapping[str, Any] = getattr(experiment, "model", {})
    part = model.get(name)
    return None if part is None else str(part.arch.type)


def loss_type(experiment: Any, name: str) -> str | None:
    """The type of loss ``name`` in the experiment, or None without one."""
    losses: Mapping[str, Any] = getattr(experiment, "losses", {})
    loss = losses.get(name)
    return None if loss is None else str(loss.type)


def require_model(experiment: Any, name: str, allowed: tuple[str, ...], purpose: str) -> Iterable[tuple[str, str]]:
    """A cross-check problem when model component ``name`` is not of an ``allowed`` type.

    A missing component is reported by the engine's ``component_use`` check (one problem per mistake).
    """
    found = model_type(experiment, name)
    if found is not None and found not in allowed:
        yield "type", f"model component {name!r} ({purpose}) must be of type {' or '.join(allowed)}, got {found!r}"


def require_loss(
    experiment: Any, name: str, allowed: str, purpose: str, optional: bool = False
) -> Iterable[tuple[str, str]]:
    """A cross-check problem when loss ``name`` is not of type ``allowed``.

    A missing loss is reported by the engine's ``component_use`` check (one problem per mistake);
    ``optional`` is kept for callers' readability.
    """
    found = loss_type(experiment, name)
    if found is not None and found != allowed:
        yield "type", f"loss {name!r} ({purpose}) must be of type {allowed!r}, got {found!r}"


class FlowTrainerConfig(TrainerConfig):
    """Base of the flow-matching trainers' configs: the ``flow`` and ``evaluation`` sections."""

    flow: FlowSettings = Field(default_factory=FlowSettings, description="Flow-matching path, time and sampling.")
    evaluation: ClosedLoopSettings = Field(
        default_factory=ClosedLoopSettings, description="Closed-loop (or offline) evaluation of the policy."
    )
