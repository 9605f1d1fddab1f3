"""Config model and spec of the ``metaworld`` env component (light: pydantic and vfp only).

``evaluation.env: {type: metaworld, task: push-wall-v3}`` rolls a policy out in a MetaWorld 3 task
(MuJoCo, state observations, no rendering needed) — the extra ``vfp-il-components[metaworld]``.
The demonstrations come from ``vfp data demo metaworld/<task>``: MetaWorld's own scripted expert sent
through one of two approach routes (the modes) before it does the task. The tasks whose routes are
defined here (:data:`METAWORLD_MODES`) report ``infos["mode"]``; any other MetaWorld task runs without
modes. Implementations: :mod:`.metaworld_env` (the env, the routes) and :mod:`.metaworld_demos` (the
demonstrations).
"""

from __future__ import annotations

import re
from typing import Final

from pydantic import Field, field_validator, model_validator

from vfp import ComponentKind, ComponentSpec, EnvConfig

__all__ = [
    "DEFAULT_EPISODE_STEPS",
    "MAX_EPISODE_STEPS",
    "METAWORLD_EXTRA",
    "METAWORLD_MODES",
    "METAWORLD_TASKS",
    "SPECS",
    "MetaWorldEnvConfig",
]

METAWORLD_EXTRA: Final = "pip install 'vfp-il-components[metaworld]'"
METAWORLD_MODES: Final[dict[str, tuple[str, ...]]] = {
    "push-wall-v3": ("left", "right"),
    "pick-place-wall-v3": ("left", "right"),
    "drawer-close-v3": ("left", "right"),
}
"""Tasks with multi-modal demonstrations: their mode names (the approach routes, see :mod:`.metaworld_env`)."""
METAWORLD_TASKS: Final[tuple[str, ...]] = tuple(METAWORLD_MODES)
DEFAULT_EPISODE_STEPS: Final = 300
"""Steps before truncation when ``max_episode_steps`` is null (the demonstrations take 100-250)."""
MAX_EPISODE_STEPS: Final = 500
"""MetaWorld's own limit (``max_path_length``): its env refuses to step further."""
_TASK_PATTERN: Final = re.compile(r"^[a-z][a-z-]*-v3$")


class MetaWorldEnvConfig(EnvConfig):
    """``metaworld``: one MetaWorld 3 task (``Meta-World/MT1``), 39-dim state as ``observation.state``.

    Every reset draws new object and goal positions from MetaWorld's own ranges, reproducibly from the
    reset seed. An episode ends at the first success (``terminate_on_success``) or after
    ``max_episode_steps`` (null: 300). For the tasks of :data:`METAWORLD_MODES`, ``infos["mode"]`` is the
    route the end effector took: the index of the first route via-point it came within ``via_radius``
    of, -1 while (or if) it passed none.
    """

    task: str = Field("push-wall-v3", description="MetaWorld task name, e.g. push-wall-v3, drawer-close-v3.")
    via_radius: float = Field(
        0.05, gt=0.0, le=0.5, description="Distance (m) from a route's via-point that classifies an episode's mode."
    )
    terminate_on_success: bool = Field(True, description="End an episode at its first success.")
    mode_weights: list[float] | None = Field(
        None, description="Weights of the modes in the demonstrations (null: uniform), reported as `mode_weights`."
    )

    @field_validator("task")
    @classmethod
    def _task_name(cls, value: str) -> str:
        if not _TASK_PATTERN.match(value):
            raise ValueError(
                f"{value!r} is not a MetaWorld 3 task name (like 'push-wall-v3'); "
                f"tasks with demonstration modes: {', '.join(METAWORLD_TASKS)}"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> MetaWorldEnvConfig:
        if self.max_episode_steps is not None and self.max_episode_steps > MAX_EPISODE_STEPS:
            raise ValueError(f"max_episode_steps: at most {MAX_EPISODE_STEPS} (MetaWorld's own episode limit)")
        if self.mode_weights is not None:
            modes = METAWORLD_MODES.get(self.task)
            if modes is None:
                raise ValueError(f"mode_weights: task {self.task!r} has no modes")
            if len(self.mode_weights) != len(modes) or min(self.mode_weights) < 0 or sum(self.mode_weights) <= 0:
                raise ValueError(f"mode_weights: {len(modes)} non-negative weights expected (modes {list(modes)})")
        return self


SPECS: Final = [
    ComponentSpec(
        ComponentKind.ENV,
        "metaworld",
        MetaWorldEnvConfig,
        "vfp_il_components.envs.metaworld_env:make_metaworld_env",
        "MetaWorld 3 task (MuJoCo), 39-dim state; the extra vfp-il-components[metaworld]",
    ),
]
