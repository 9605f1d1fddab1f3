"""``vfp data``: write synthetic demo datasets and inspect datasets.

This module is imported to build the command line, so it stays light: h5py, numpy, torch and lerobot
are imported inside the commands.
"""

from __future__ import annotations

import json
import shutil
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from vfp_il_components.tasks import TASK_NAMES

app = typer.Typer(help="Make synthetic demo datasets and inspect datasets (HDF5 or LeRobot).", no_args_is_help=True)

EXIT_FAILURE = 1
EXIT_USAGE = 2


class DataFormat(StrEnum):
    hdf5 = "hdf5"
    lerobot = "lerobot"


def _fail(message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {escape(message)}", markup=True)
    return typer.Exit(code)


def _complete_task(incomplete: str) -> list[str]:
    return [name for name in TASK_NAMES if name.startswith(incomplete)]


def _parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values are read as JSON when they parse (4, 0.7, true, [1, 2]), else as text."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise _fail(f"--option expects KEY=VALUE, got {pair!r}", EXIT_USAGE)
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


@app.command("demo")
def demo(
    task_name: str = typer.Argument(
        ..., metavar="TASK", help=f"Synthetic task: {', '.join(TASK_NAMES)}.", autocompletion=_complete_task
    ),
    out: Path = typer.Argument(..., help="HDF5 file to write, or the folder of the LeRobot dataset."),
    data_format: DataFormat = typer.Option(DataFormat.hdf5, "--format", "-f", help="Dataset format."),
    episodes: int = typer.Option(200, "--episodes", "-n", min=1, help="Number of demonstrations."),
    seed: int = typer.Option(0, "--seed", help="Seed of the demo generator."),
    images: bool = typer.Option(False, "--images/--no-images", help="Also write rendered image observations."),
    image_size: int = typer.Option(64, "--image-size", min=8, help="Side of the rendered images in pixels."),
    video: bool = typer.Option(False, "--video/--no-video", help="LeRobot only: store images as an mp4 video."),
    val_ratio: float = typer.Option(
        0.1, "--val-ratio", min=0.0, max=0.99, help="HDF5 only: share of demos in mask/valid."
    ),
    repo_id: str | None = typer.Option(None, "--repo-id", help="LeRobot only: repo id (default vfp/<task>)."),
    option: list[str] = typer.Option(
        None, "--option", "-o", metavar="KEY=VALUE", help="Task option (value read as JSON); repeatable."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing dataset at OUT."),
) -> None:
    """Write demonstrations of a synthetic task's scripted expert (ground-truth mode per episode)."""
    if task_name not in TASK_NAMES:
        raise _fail(f"unknown task {task_name!r}; available tasks: {', '.join(TASK_NAMES)}", EXIT_USAGE)
    if video and not images:
        raise _fail("--video needs --images", EXIT_USAGE)
    options = _parse_options(option)
    out = out.expanduser()
    if out.exists():
        if not force:
            raise _fail(f"{out} already exists (use --force to replace it)")
        if out.is_dir():
            if not (out / "meta" / "info.json").is_file():
                raise _fail(f"{out} is a folder that is not a LeRobot dataset; refusing to delete it")
            shutil.rmtree(out)
    from vfp_il_components.tasks import get_task

    try:
        task = get_task(task_name, **options)
        demos = task.generate_demos(episodes, seed, images=images, image_size=image_size)
        if data_format is DataFormat.hdf5:
            from vfp_il_components.data.writers import write_hdf5_dataset

            write_hdf5_dataset(demos, out, task=task, val_ratio=val_ratio, seed=seed)
        else:
            from vfp_il_components.data.lerobot_writer import write_lerobot_dataset

            write_lerobot_dataset(demos, out, repo_id=repo_id or f"vfp/{task_name}", task=task, video=video)
    except (TypeError, ValueError, ImportError) as exc:
        raise _fail(str(exc)) from None
    frames = sum(len(d) for d in demos)
    typer.echo(f"wrote {len(demos)} episodes ({frames} frames) of {task_name} to {out} [{data_format.value}]")


@app.command("inspect")
def inspect(
    path: Path = typer.Argument(..., help="An HDF5 file or a LeRobot dataset folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    max_episodes: int = typer.Option(20, "--max-episodes", min=0, help="Episodes listed in the table."),
) -> None:
    """Print episodes, lengths, keys, shapes, dtypes and statistics of a dataset."""
    from vfp_il_components.data.errors import DataError
    from vfp_il_components.data.inspect import inspect_dataset

    try:
        summary = inspect_dataset(path)
    except DataError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return
    _print_summary(summary, max_episodes)


def _short(values: Any, limit: int = 4) -> str:
    if values is None:
        return "-"
    if isinstance(values, float):
        return f"{values:.3g}"
    shown = ", ".join(f"{v:.3g}" for v in values[:limit])
    return f"[{shown}{', …' if len(values) > limit else ''}]"


def _print_summary(summary: dict[str, Any], max_episodes: int) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)
    overview = Table(title=f"{summary['format']} dataset", show_header=False)
    overview.add_column("field", style="bold")
    overview.add_column("value", overflow="fold")
    rows = [
        ("path", summary["path"]),
        ("episodes", summary["episodes"]),
        ("frames", summary["frames"]),
        (
            "length min/mean/max",
            None
            if summary["length_min"] is None
            else f"{summary['length_min']} / {summary['length_mean']} / {summary['length_max']}",
        ),
        ("fps", summary.get("fps")),
        ("task", summary.get("task")),
    ]
    if summary.get("filters"):
        rows.append(("filters", ", ".join(f"{k} ({n})" for k, n in summary["filters"].items())))
    if summary.get("note"):
        rows.append(("note", summary["note"]))
    for field, value in rows:
        overview.add_row(field, "-" if value is None else str(value))
    console.print(overview)

    features = Table(title="features")
    features.add_column("key", no_wrap=True)
    for column in ("shape", "dtype", "kind", "mean", "std", "min", "max"):
        features.add_column(column, overflow="fold")
    for feature in summary["features"]:
        stats = feature.get("stats", {})
        features.add_row(
            feature["key"]
            + (f" (missing in {feature['missing_in_episodes']})" if "missing_in_episodes" in feature else ""),
            str(tuple(feature["shape"])),
            str(feature["dtype"]),
            feature["kind"],
            *(_short(stats.get(name)) for name in ("mean", "std", "min", "max")),
        )
    console.print(features)

    lengths = list(summary["episode_lengths"].items())
    if lengths and max_episodes:
        episodes = Table(title="episodes")
        episodes.add_column("episode")
        episodes.add_column("length", justify="right")
        for name, length in lengths[:max_episodes]:
            episodes.add_row(name, str(length))
        console.print(episodes)
        if len(lengths) > max_episodes:
            console.print(f"… and {len(lengths) - max_episodes} more episodes (--max-episodes, --json)")
