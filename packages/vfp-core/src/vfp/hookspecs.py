"""The vfp plugin contract: the hooks a plugin may implement.

A plugin is a module named by an entry point in the ``vfp`` group. It sets
``VFP_CONTRACT = "1.1"`` (the contract version it targets; ``"1.0"`` plugins keep working) and
implements any of these hooks with ``@vfp.hookimpl``. Lifecycle hooks are also implemented by the
callback components of a run; they receive ``run``, a :class:`vfp.RunInfo`. vfp calls every hook
through one typed method of its plugin host, never by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import typer

    from vfp.components import ComponentSpec
    from vfp.lifecycle import RunInfo, RunStatus

PROJECT_NAME = "vfp"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def vfp_register_components() -> Sequence[ComponentSpec]:
    """Return the components (kind, name, config model, lazy implementation) this plugin provides."""
    raise NotImplementedError


@hookspec
def vfp_config_dirs() -> Sequence[Path | str]:
    """Return folders of packaged experiment and model-architecture YAMLs."""
    raise NotImplementedError


@hookspec
def vfp_add_cli_commands(app: typer.Typer) -> None:
    """Add subcommands or command groups to the ``vfp`` command line."""


@hookspec
def vfp_on_train_start(run: RunInfo) -> None:
    """Called once before the first training step (also on resume: see ``run.start_step``)."""


@hookspec
def vfp_on_step_end(run: RunInfo, step: int, metrics: Mapping[str, float]) -> None:
    """Called after each logged optimizer step with its training metrics."""


@hookspec
def vfp_on_evaluation_end(run: RunInfo, step: int, metrics: Mapping[str, float]) -> None:
    """Called after each periodic evaluation with its metrics."""


@hookspec
def vfp_on_checkpoint_saved(run: RunInfo, step: int, path: Path) -> None:
    """Called after a checkpoint has been written atomically."""


@hookspec
def vfp_on_train_end(run: RunInfo, status: RunStatus) -> None:
    """Called once when training stops; status is completed, interrupted or failed."""
