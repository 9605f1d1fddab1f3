"""Config models and specs of the synthetic tasks' ``env`` components (light: pydantic and vfp only).

``evaluation.env: {type: avoid_obstacle}`` (or ``mixture``, ``ordered_subgoals``) rolls a policy out in
the task its demonstrations came from (``vfp data demo TASK``). ``options`` are the task's constructor
options (the same as ``data.generate.task_options``); ``images: true`` adds the rendered
``observation.image`` that image policies (``exp2``) see. Implementations: :mod:`.synthetic`
(numpy, gymnasium: the extra ``vfp-il-components[envs]``).
"""

from __future__ import annotations

from typing import Final

from pydantic import Field

from vfp import ComponentKind, ComponentSpec, EnvConfig
from vfp_il_components.tasks.options import AvoidObstacleOptions, MixtureOptions, OrderedSubgoalsOptions

__all__ = ["SPECS", "AvoidObstacleEnvConfig", "MixtureEnvConfig", "OrderedSubgoalsEnvConfig", "SyntheticEnvConfig"]

TARGETS: Final = "vfp_il_components.envs.synthetic"


class SyntheticEnvConfig(EnvConfig):
    """What every synthetic task's env takes besides the task's own options."""

    images: bool = Field(False, description="Also observe the rendered scene as `observation.image` (uint8 HWC).")
    image_size: int = Field(64, ge=8, le=1024, description="Side of `observation.image` in pixels (as the data's).")
    render_size: int = Field(128, ge=8, le=2048, description="Side of the frames `render()` returns (videos).")


class AvoidObstacleEnvConfig(SyntheticEnvConfig):
    """``avoid_obstacle``: reach the goal around a disk, on the left or the right (modes ``left``, ``right``).

    ``max_episode_steps`` null: the task's ``max_steps`` (60).
    """

    options: AvoidObstacleOptions = Field(default_factory=AvoidObstacleOptions, description="The task's options.")


class OrderedSubgoalsEnvConfig(SyntheticEnvConfig):
    """``ordered_subgoals``: visit three targets in one of six orders (the modes).

    ``max_episode_steps`` null: the task's ``max_steps`` (80).
    """

    options: OrderedSubgoalsOptions = Field(default_factory=OrderedSubgoalsOptions, description="The task's options.")


class MixtureEnvConfig(SyntheticEnvConfig):
    """``mixture``: from a fixed context, every action must stay near one of K mode positions.

    An episode is ``max_episode_steps`` actions (null: 16, one chunk of the packaged configs' horizon);
    it succeeds when every action lies within ``tolerance`` of the same mode, as the task's own
    evaluation classifies the executed part of the first chunk. An episode is one decision: evaluate with
    ``evaluation.action_steps: null`` (the whole chunk, one query). The context never changes, so a policy
    that re-plans within an episode draws its mode afresh at each query and leaves the mode it started on
    by chance (success near the sum of the squared mode frequencies at two queries, 1/3 for three
    balanced modes), whatever its quality.
    """

    options: MixtureOptions = Field(default_factory=MixtureOptions, description="The task's options.")


SPECS: Final = [
    ComponentSpec(
        ComponentKind.ENV,
        "avoid_obstacle",
        AvoidObstacleEnvConfig,
        f"{TARGETS}:make_avoid_obstacle",
        "synthetic task env: around an obstacle on the left or right",
    ),
    ComponentSpec(
        ComponentKind.ENV,
        "ordered_subgoals",
        OrderedSubgoalsEnvConfig,
        f"{TARGETS}:make_ordered_subgoals",
        "synthetic task env: three targets visited in one of six orders",
    ),
    ComponentSpec(
        ComponentKind.ENV,
        "mixture",
        MixtureEnvConfig,
        f"{TARGETS}:make_mixture",
        "synthetic task env: a conditional mixture of K action modes",
    ),
]
