"""``vfp export RUN OUT``: a run's policy as a self-contained folder (safetensors, config, policy.json, model card)."""

from __future__ import annotations

from pathlib import Path

import typer

from vfp.cli._common import EXIT_USAGE, err, fail

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("export", no_args_is_help=True)(export)


def export(
    run: Path = typer.Argument(..., help="A run directory or a checkpoint file."),
    out: Path = typer.Argument(..., help="Folder to write (must not exist, or be empty)."),
    checkpoint: str = typer.Option("latest", "--checkpoint", help="latest, best or a step number (run directories)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the files of a non-empty OUT."),
) -> None:
    """Export a run's policy: loadable with `vfp.load_policy(OUT)` or `vfp serve OUT`, without the training data."""
    if not run.exists():
        raise fail(f"{run}: no such run directory or checkpoint", EXIT_USAGE)
    from vfp.policy.export import export_policy
    from vfp.policy.runtime import PolicyError

    try:
        written = export_policy(run, out, checkpoint=checkpoint, overwrite=overwrite)
    except PolicyError as exc:
        raise fail(str(exc)) from None
    err().print(f"exported {run} to {written}", highlight=False, markup=False)
