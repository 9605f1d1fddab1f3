"""The vfp plugin contract: the hooks a plugin may implement.

A plugin is a module named by an entry point in the ``vfp`` group. It sets
``VFP_CONTRACT = "1.0"`` (the contract version it targets) and implements any of these hooks with
``@vfp.hookimpl``. Lifecycle hooks are also implemented by the callback components of a run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import typer

    from vfp.components import ComponentSpec

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
def vfp_on_train_start(run: Any) -> None:
    """Called once before the first training step with the run context."""


@hookspec
def vfp_on_step_end(run: Any, step: int, metrics: Mapping[str, float]) -> None:
    """Called after each logged optimizer step with its training metrics."""


@hookspec
def vfp_on_evaluation_end(run: Any, step: int, metrics: Mapping[str, float]) -> None:
    """Called after each periodic evaluation with its metrics."""


@hookspec
def vfp_on_checkpoint_saved(run: Any, step: int, path: Path) -> None:
    """Called after a checkpoint has been written atomically."""


@hookspec
def vfp_on_train_end(run: Any, status: str) -> None:
    """Called once when training stops; status is completed, interrupted or failed."""
