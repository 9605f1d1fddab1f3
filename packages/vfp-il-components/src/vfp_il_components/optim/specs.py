"""Light registration module of the optimizer components (config models only, no torch import).

Builders live in ``builders.py`` and are imported only when an optimizer is built. Every optimizer
accepts per-component settings under ``components``::

    optimizers:
      default:
        type: adamw_cosine
        lr: 3e-4
        components:
          backbone: {lr_scale: 0.1, weight_decay: 0.0}
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import Field

from vfp import ComponentConfig, ComponentKind, ComponentSpec, Settings

__all__ = [
    "SPECS",
    "AdamWCosineConfig",
    "AdamWFamilyConfig",
    "ComponentGroupConfig",
    "OneCycleConfig",
    "ScheduleFreeConfig",
]

Beta = Annotated[float, Field(ge=0.0, lt=1.0)]


class ComponentGroupConfig(Settings):
    """Settings of one model component's parameter group."""

    lr_scale: float = Field(
        1.0, ge=0.0, description="Multiplies every learning rate of the schedule for this component."
    )
    weight_decay: float | None = Field(
        None, ge=0.0, description="Weight decay of this component (null: the optimizer's)."
    )


class AdamWFamilyConfig(ComponentConfig):
    """Settings shared by the AdamW-based optimizers (not registered itself)."""

    lr: float = Field(1e-4, gt=0.0, description="Learning rate (the peak of the schedule where there is one).")
    betas: tuple[Beta, Beta] = Field((0.9, 0.999), description="Adam coefficients (beta1, beta2).")
    eps: float = Field(1e-8, gt=0.0, description="Term added to the denominator for numerical stability.")
    weight_decay: float = Field(0.01, ge=0.0, description="Decoupled weight decay.")
    components: dict[str, ComponentGroupConfig] = Field(
        default_factory=dict,
        description="Per model component (parameter group name): lr_scale and weight_decay overrides.",
    )

    def cross_check(self, experiment: Any) -> Iterator[tuple[str, str]]:
        """Every entry of ``components`` names a trainable model component that uses this optimizer."""
        own_names = [name for name, section in experiment.optimizers.items() if section is self]
        for component in self.components:
            part = experiment.model.get(component)
            if part is None:
                defined = ", ".join(experiment.model) or "none"
                close = difflib.get_close_matches(component, list(experiment.model), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                yield (
                    f"components.{component}",
                    f"no model component named {component!r}{hint}; defined in 'model': {defined}",
                )
            elif part.freeze:
                yield f"components.{component}", f"model component {component!r} is frozen: it has no parameter group"
            elif own_names and part.optimizer not in own_names:
                yield (
                    f"components.{component}",
                    f"model component {component!r} is trained by optimizer {part.optimizer!r}, not this one",
                )

    def _warmup_issues(self, warmup_steps: int, experiment: Any) -> Iterator[tuple[str, str]]:
        max_steps = experiment.training.max_steps
        if warmup_steps >= max_steps:
            yield (
                "warmup_steps",
                f"warmup of {warmup_steps} steps is not shorter than training (training.max_steps = {max_steps}); "
                "lower warmup_steps or raise training.max_steps",
            )


class AdamWCosineConfig(AdamWFamilyConfig):
    """AdamW with a linear warmup from ``start_lr`` to ``lr``, then a cosine decay to ``end_lr``.

    The schedule spans the run's total steps (``training.max_steps``); past its end the rate stays at
    ``end_lr``. A component's rates are all multiplied by its ``lr_scale``.
    """

    warmup_steps: int = Field(0, ge=0, description="Steps of linear warmup from start_lr to lr.")
    start_lr: float = Field(0.0, ge=0.0, description="Learning rate at step 0 (start of the warmup).")
    end_lr: float = Field(0.0, ge=0.0, description="Learning rate at the last step (end of the cosine decay).")

    def cross_check(self, experiment: Any) -> Iterator[tuple[str, str]]:
        yield from super().cross_check(experiment)
        yield from self._warmup_issues(self.warmup_steps, experiment)
        if self.start_lr > self.lr:
            yield "start_lr", f"start_lr ({self.start_lr}) must not exceed the peak lr ({self.lr})"
        if self.end_lr > self.lr:
            yield "end_lr", f"end_lr ({self.end_lr}) must not exceed the peak lr ({self.lr})"


class OneCycleConfig(AdamWFamilyConfig):
    """AdamW with torch's ``OneCycleLR`` over the run's total steps; ``lr`` is the cycle's maximum."""

    pct_start: float = Field(0.3, gt=0.0, lt=1.0, description="Fraction of the steps spent increasing the rate.")
    anneal_strategy: Literal["cos", "linear"] = Field("cos", description="Shape of the rate's rise and fall.")
    div_factor: float = Field(25.0, gt=0.0, description="Initial rate = lr / div_factor.")
    final_div_factor: float = Field(1e4, gt=0.0, description="Final rate = initial rate / final_div_factor.")
    three_phase: bool = Field(False, description="Add a third phase that anneals below the initial rate.")
    cycle_momentum: bool = Field(True, description="Cycle beta1 inversely to the rate between the momenta below.")
    base_momentum: float = Field(0.85, ge=0.0, lt=1.0, description="Lowest beta1 (at the peak rate).")
    max_momentum: float = Field(0.95, ge=0.0, lt=1.0, description="Highest beta1 (at the start and end).")

    def cross_check(self, experiment: Any) -> Iterator[tuple[str, str]]:
        yield from super().cross_check(experiment)
        max_steps = experiment.training.max_steps
        if self.pct_start * max_steps <= 1:
            yield (
                "pct_start",
                f"the rising phase (pct_start * training.max_steps = {self.pct_start * max_steps:g}) must be longer "
                "than 1 step",
            )
        if self.three_phase and self.pct_start >= 0.5:
            yield "pct_start", "with three_phase the rising and falling phases take 2 * pct_start: use pct_start < 0.5"
        if self.cycle_momentum and self.base_momentum > self.max_momentum:
            yield "base_momentum", f"base_momentum ({self.base_momentum}) exceeds max_momentum ({self.max_momentum})"


class ScheduleFreeConfig(AdamWFamilyConfig):
    """Schedule-free AdamW or RAdam (the ``schedulefree`` package): no schedule, an averaged eval iterate.

    The engine switches the optimizer to eval mode for evaluation and checkpoints (the averaged weights).
    """

    variant: Literal["adamw", "radam"] = Field("adamw", description="AdamWScheduleFree or RAdamScheduleFree.")
    lr: float = Field(2.5e-3, gt=0.0, description="Learning rate.")
    weight_decay: float = Field(0.0, ge=0.0, description="Weight decay.")
    warmup_steps: int = Field(0, ge=0, description="Linear warmup steps (adamw only; radam needs none).")
    r: float = Field(0.0, ge=0.0, description="Polynomial weighting power of the average.")
    weight_lr_power: float = Field(2.0, ge=0.0, description="Weights of the average are lr^weight_lr_power.")
    silent_sgd_phase: bool = Field(True, description="radam only: do not update during RAdam's SGD phase.")

    def cross_check(self, experiment: Any) -> Iterator[tuple[str, str]]:
        yield from super().cross_check(experiment)
        if self.variant == "radam" and self.warmup_steps > 0:
            yield "warmup_steps", "the radam variant has no warmup (its rectification replaces it): remove warmup_steps"
        else:
            yield from self._warmup_issues(self.warmup_steps, experiment)


SPECS: list[ComponentSpec] = [
    ComponentSpec(
        ComponentKind.OPTIMIZER,
        "adamw_cosine",
        AdamWCosineConfig,
        "vfp_il_components.optim.builders:build_adamw_cosine",
        "AdamW with linear warmup and cosine decay.",
    ),
    ComponentSpec(
        ComponentKind.OPTIMIZER,
        "onecycle",
        OneCycleConfig,
        "vfp_il_components.optim.builders:build_onecycle",
        "AdamW with torch's OneCycleLR.",
    ),
    ComponentSpec(
        ComponentKind.OPTIMIZER,
        "schedule_free",
        ScheduleFreeConfig,
        "vfp_il_components.optim.builders:build_schedule_free",
        "Schedule-free AdamW or RAdam (schedulefree package).",
    ),
]
