"""Synthetic multi-modal tasks with known ground truth.

Each task has a scripted expert, a demo generator and closed-loop evaluation metrics (success rate,
per-mode frequencies, normalized mode entropy, off-manifold rate, Sinkhorn distance to the expert's
actions). This module is light: a task's implementation (numpy, torch) is imported by ``get_task``.

>>> task = get_task("avoid_obstacle")
>>> episodes = task.generate_demos(100, seed=0)
>>> metrics = task.evaluate(policy, num_episodes=200, seed=1, history=2)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from vfp_il_components.tasks.base import Task

__all__ = ["TASK_NAMES", "get_task"]

_TASK_TARGETS: Final[dict[str, str]] = {
    "mixture": "vfp_il_components.tasks.mixture:MixtureTask",
    "avoid_obstacle": "vfp_il_components.tasks.avoid_obstacle:AvoidObstacleTask",
    "ordered_subgoals": "vfp_il_components.tasks.ordered_subgoals:OrderedSubgoalsTask",
}

TASK_NAMES: Final[tuple[str, ...]] = tuple(_TASK_TARGETS)
"""Names accepted by ``get_task``."""


def get_task(name: str, **options: Any) -> Task:
    """Build the synthetic task ``name`` with its constructor ``options`` (``Task.options()`` round-trips)."""
    if name not in _TASK_TARGETS:
        raise KeyError(f"unknown task {name!r}; available tasks: {', '.join(TASK_NAMES)}")
    module_name, _, attribute = _TASK_TARGETS[name].partition(":")
    task_class = getattr(importlib.import_module(module_name), attribute)
    try:
        task: Task = task_class(**options)
    except TypeError as exc:
        raise TypeError(f"task {name!r}: invalid options {sorted(options)}: {exc}") from None
    return task
