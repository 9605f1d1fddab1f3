"""``vfp plot``: training and evaluation curves of runs as a PNG (matplotlib; reads run folders only)."""

from __future__ import annotations

from pathlib import Path

import typer

from vfp.cli._common import EXIT_USAGE, err, fail
from vfp.cli.runs import METRIC_HELP, check_metrics, read_or_exit


def register(app: typer.Typer) -> None:
    """Add ``plot`` to the ``vfp`` application."""
    app.command("plot", no_args_is_help=True)(plot)


def plot(
    runs: list[str] = typer.Argument(..., help="Run folders, folders holding runs, or globs ('runs/exp-*')."),
    output: Path = typer.Option(Path("curves.png"), "--output", "-o", help="Image to write (.png, .pdf, .svg)."),
    metric: list[str] | None = typer.Option(
        None, "--metric", "-m", help=METRIC_HELP.replace("Default: ", "Default: train/loss, val/loss and ")
    ),
    chunks: bool = typer.Option(
        False,
        "--chunks",
        help="Instead of curves: one run's sampled action chunks against the demonstrations' (loads the policy "
        "and the run's data; run from where the run was trained so its data path resolves).",
    ),
    samples: int = typer.Option(16, "--samples", min=1, help="With --chunks: chunks sampled per observation."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="With --chunks: integration steps."),
    seed: int = typer.Option(0, "--seed", help="With --chunks: seed of the sampled chunks."),
) -> None:
    """Curves over steps (one panel per metric), runs overlaid, seed groups as mean ± std bands; or, with
    --chunks, a run's sampled action chunks against the demonstrations'."""
    if chunks:
        _plot_chunks(runs, output, samples=samples, steps=steps, seed=seed)
        return
    folders = read_or_exit(runs)
    check_metrics(folders, metric or ())
    try:
        from vfp.experiments.plot import plot_runs
    except ImportError as exc:  # matplotlib is the `plot` extra
        raise fail(f"vfp plot needs matplotlib ({exc}): pip install 'vfp-core[plot]'") from None
    try:
        written = plot_runs(folders, output, metric or ())
    except ValueError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    err().print(f"wrote {written}", highlight=False, markup=False)


def _plot_chunks(runs: list[str], output: Path, *, samples: int, steps: int | None, seed: int) -> None:
    folders = read_or_exit(runs)
    if len(folders) != 1:
        raise fail(f"--chunks draws one run; got {len(folders)}: {', '.join(f.name for f in folders)}", EXIT_USAGE)
    try:
        from vfp.experiments.chunks import plot_chunks
    except ImportError as exc:
        raise fail(f"vfp plot needs matplotlib ({exc}): pip install 'vfp-core[plot]'") from None
    from vfp.config import ConfigError
    from vfp.engine.checkpoint import CheckpointError
    from vfp.policy import PolicyError

    try:
        written = plot_chunks(folders[0].path, output, samples=samples, steps=steps, seed=seed)
    except (ConfigError, CheckpointError, PolicyError, FileNotFoundError) as exc:
        raise fail(f"cannot draw the chunks of {folders[0].path}: {exc}", EXIT_USAGE) from None
    err().print(f"wrote {written}", highlight=False, markup=False)
