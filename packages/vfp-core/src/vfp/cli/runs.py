"""``vfp runs list|compare``: tables of run folders. Reads only the folders (no torch, no numpy)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import typer

from vfp.cli._common import EXIT_USAGE, err, escape, fail, out, print_json
from vfp.experiments import Comparison, RunFolder, RunReadError, compare_runs, expand_runs, read_run, run_value
from vfp.experiments._folder import format_date

app = typer.Typer(help="List and compare training runs (reads run folders only).", no_args_is_help=True)

METRIC_HELP = (
    "Metric as SPLIT/NAME (val/loss, train/loss, val/success_rate); a bare NAME is the validation one when "
    "the run has it. Default: val/success_rate, else val/loss, else train/loss. Repeatable."
)
STATISTICS = ("last", "best", "last3")
_STATUS_STYLE = {"completed": "green", "interrupted": "yellow", "failed": "bold red", "running": "cyan"}


def _number(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "-"


def read_or_exit(patterns: Sequence[str]) -> list[RunFolder]:
    """Run folders of ``patterns`` (warnings on stderr); bad input exits 2 with the reason."""
    try:
        runs = [read_run(path) for path in expand_runs(patterns)]
    except RunReadError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except OSError as exc:
        raise fail(f"cannot read {exc.filename}: {exc.strerror}", EXIT_USAGE) from None
    for run in runs:
        for warning in run.warnings:
            err().print(f"[yellow]warning:[/] {escape(warning)}", markup=True, highlight=False)
    return runs


def check_metrics(runs: Sequence[RunFolder], metrics: Sequence[str]) -> None:
    """Exit 2 when no run has a metric asked for, listing the metrics the runs have."""
    for metric in metrics:
        if not any(run.series(metric).values for run in runs):
            present = sorted({name for run in runs for name in run.metric_names()})
            shown = ", ".join(present) if present else "none (their metrics.jsonl files are empty)"
            raise fail(f"no run has the metric {metric!r}; the runs have: {shown}", EXIT_USAGE)


@app.command("list")
def list_runs(
    dirs: list[str] | None = typer.Argument(None, help="Run folders, folders holding runs, or globs (default: runs)."),
    metric: str | None = typer.Option(None, "--metric", help=METRIC_HELP.replace(" Repeatable.", "")),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
) -> None:
    """One line per run: name, experiment, trainer, steps, status, last and best of the main metric, git, date."""
    runs = read_or_exit(dirs or ["runs"])
    check_metrics(runs, [metric] if metric else [])
    rows: list[dict[str, Any]] = []
    for run in runs:
        name = metric or run.main_metric()
        series = run.series(name)
        rows.append(
            {
                "path": str(run.path),
                "name": run.name,
                "experiment": run.experiment,
                "trainer": run.trainer,
                "seed": run.seed,
                "steps_done": run.steps_done,
                "steps_planned": run.planned_steps,
                "status": run.status,
                "metric": series.name,
                "last": series.last,
                "best": series.best(),
                "git": run.git_revision,
                "started": run.started,
            }
        )
    if as_json:
        print_json(
            [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()} for r in rows]
        )
        return
    from rich.table import Table

    table = Table(title=f"{len(rows)} run(s)")
    for column in ("run", "experiment", "trainer", "steps", "status", "metric", "last", "best", "git", "started"):
        table.add_column(column, overflow="fold", justify="right" if column in ("steps", "last", "best") else "left")
    for row in rows:
        status = str(row["status"])
        table.add_row(
            escape(row["name"]),
            escape(row["experiment"]),
            escape(row["trainer"]),
            f"{row['steps_done']}/{row['steps_planned'] if row['steps_planned'] is not None else '?'}",
            f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]",
            escape(row["metric"]),
            _number(row["last"]),
            _number(row["best"]),
            escape(row["git"] or "-"),
            format_date(row["started"]),
        )
    out().print(table)


@app.command("compare")
def compare(
    runs: list[str] = typer.Argument(..., help="Run folders, folders holding runs, or globs ('runs/exp-*')."),
    metric: list[str] | None = typer.Option(None, "--metric", "-m", help=METRIC_HELP),
    statistic: str = typer.Option(
        "last", "--stat", help="Each run's value: last (final evaluation), best, or last3 (mean of the last three)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """The config keys that differ between runs, side by side with their metrics; runs that differ only by
    seed are grouped with mean ± std and n."""
    if statistic not in STATISTICS:
        raise fail(f"--stat must be one of {', '.join(STATISTICS)}, got {statistic!r}", EXIT_USAGE)
    folders = read_or_exit(runs)
    check_metrics(folders, metric or ())
    comparison = compare_runs(folders, metric or (), statistic)  # type: ignore[arg-type]
    if as_json:
        print_json(comparison.to_json())
        return
    print_comparison(comparison)


def print_comparison(comparison: Comparison, title: str | None = None) -> None:
    """Two rich tables: runs side by side, then seed groups with mean ± std (n)."""
    from rich.table import Table

    keys = list(comparison.differing)
    stat = "" if comparison.statistic == "last" else f" ({comparison.statistic})"
    table = Table(title=title or f"{len(comparison.runs)} run(s)")
    table.add_column("run", overflow="fold")
    table.add_column("status")
    table.add_column("seed", justify="right")
    for key in keys:
        table.add_column(key, overflow="fold")
    for name in comparison.metrics:
        table.add_column(name + stat, justify="right")
    for index, run in enumerate(comparison.runs):
        status = run.status
        table.add_row(
            escape(run.name),
            f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]",
            str(run.seed),
            *(escape(_cell(comparison.differing[key][index])) for key in keys),
            *(_number(run_value(run, name, comparison.statistic)) for name in comparison.metrics),
        )
    out().print(table)
    if not keys:
        out().print("the runs' configs are identical except for the seed")
    if any(len(group.runs) > 1 for group in comparison.groups):
        groups = Table(title="seed groups: mean ± std (n)")
        for key in keys:
            groups.add_column(key, overflow="fold")
        groups.add_column("seeds")
        for name in comparison.metrics:
            groups.add_column(name + stat, justify="right")
        for group in comparison.groups:
            cells = []
            for name in comparison.metrics:
                mean, std, n = group.stats(name, comparison.statistic)
                spread = f" ± {std:.2g}" if math.isfinite(std) else ""
                cells.append(f"{_number(mean)}{spread} ({n})")
            groups.add_row(*(escape(value) for _, value in group.key), ",".join(str(s) for s in group.seeds), *cells)
        out().print(groups)


def _cell(value: object) -> str:
    return "-" if value is None else str(value)
