"""The constructor options of each synthetic task as config models, for ``vfp config validate``.

A task is a dataclass whose fields are its options (:mod:`vfp_il_components.tasks.base`), but its module
imports numpy and torch, which validating a config must not. These models mirror those fields (a test
keeps the names, types and defaults in step), add bounds, and repeat the checks of each task's
``__post_init__`` that need no array, so ``data.generate.task_options`` is refused at validate time with
the option's name, rather than by a ``TypeError`` when the demos are generated.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, model_validator

from vfp import Settings

__all__ = ["TASK_OPTION_MODELS", "AvoidObstacleOptions", "MixtureOptions", "OrderedSubgoalsOptions"]

Length = Annotated[float, Field(gt=0.0, le=100.0)]
"""A distance or speed in the task's plane (the tasks live in about [-2, 2]^2)."""
Steps = Annotated[int, Field(ge=1, le=100_000)]
Weight = Annotated[float, Field(gt=0.0, le=1e6)]


class _SpeedWithinStep(Settings):
    speed: float
    max_step: float

    @model_validator(mode="after")
    def _speed_within_step(self) -> Self:
        if self.speed > self.max_step:
            raise ValueError(
                f"speed ({self.speed}) must not exceed max_step ({self.max_step}), "
                "or the simulator cannot follow the expert"
            )
        return self


class AvoidObstacleOptions(_SpeedWithinStep):
    """Options of ``avoid_obstacle``."""

    left_probability: float = Field(0.5, gt=0.0, lt=1.0)
    obstacle_radius: Length = 0.35
    waypoint_x: Length = 0.75
    speed: Length = 0.08
    max_step: Length = 0.1
    goal_tolerance: Length = 0.1
    tube: Length = 0.15
    jitter: float = Field(0.05, ge=0.0, le=100.0)
    max_steps: Steps = 60

    @model_validator(mode="after")
    def _room_for_the_tube(self) -> Self:
        if self.waypoint_x <= self.obstacle_radius + self.tube:
            raise ValueError("waypoint_x must be more than obstacle_radius + tube (room for the tube around it)")
        return self


class OrderedSubgoalsOptions(_SpeedWithinStep):
    """Options of ``ordered_subgoals``."""

    order_weights: list[Weight] | None = Field(None, min_length=6, max_length=6)
    target_radius: Length = 0.8
    speed: Length = 0.1
    max_step: Length = 0.12
    visit_radius: Length = 0.2
    demo_visit_radius: Length = 0.1
    tube: Length = 0.15
    jitter: float = Field(0.05, ge=0.0, le=100.0)
    max_steps: Steps = 80
    stall_steps: Steps = 30

    @model_validator(mode="after")
    def _demos_count_as_visits(self) -> Self:
        if self.demo_visit_radius > self.visit_radius:
            raise ValueError(
                f"demo_visit_radius ({self.demo_visit_radius}) must be at most visit_radius ({self.visit_radius}), "
                "or the demonstrations would not count as visits"
            )
        return self


class MixtureOptions(Settings):
    """Options of ``mixture``."""

    num_modes: int = Field(3, ge=2, le=1024)
    radius: Length = 1.0
    noise: float = Field(0.02, ge=0.0, le=100.0)
    tolerance: Length = 0.15
    episode_length: Steps = 24
    weights: list[Weight] | None = Field(None, max_length=1024)

    @model_validator(mode="after")
    def _weights_per_mode(self) -> Self:
        if self.weights is not None and len(self.weights) != self.num_modes:
            raise ValueError(f"weights must be {self.num_modes} positive numbers (num_modes), got {self.weights}")
        return self


TASK_OPTION_MODELS: dict[str, type[Settings]] = {
    "avoid_obstacle": AvoidObstacleOptions,
    "ordered_subgoals": OrderedSubgoalsOptions,
    "mixture": MixtureOptions,
}
"""The options model of each task in :data:`vfp_il_components.tasks.TASK_NAMES`."""
