"""``vfp data``: write synthetic demo datasets, inspect datasets, build frame caches.

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

from vfp_il_components.envs.metaworld import METAWORLD_TASKS
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

    console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
    console.print(f"[bold red]error:[/] {escape(message)}", markup=True)
    return typer.Exit(code)


def _warn(messages: list[str]) -> None:
    """Print ``warning: message`` lines on stderr (plain text, never markup)."""
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
    for message in messages:
        console.print(f"[yellow]warning:[/] {escape(message)}", markup=True)


def _complete_task(incomplete: str) -> list[str]:
    names = [*TASK_NAMES, *(f"metaworld/{task}" for task in METAWORLD_TASKS)]
    return [name for name in names if name.startswith(incomplete)]


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
        ...,
        metavar="TASK",
        help=f"Synthetic task: {', '.join(TASK_NAMES)}; or metaworld/<task>, MetaWorld's scripted experts on two "
        f"routes (the metaworld extra): {', '.join(METAWORLD_TASKS)}.",
        autocompletion=_complete_task,
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
    """Write demonstrations of a synthetic task's or a MetaWorld task's scripted expert (ground-truth mode per
    episode)."""
    metaworld = task_name.startswith("metaworld/")
    if task_name not in TASK_NAMES and not metaworld:
        raise _fail(f"unknown task {task_name!r}; available tasks: {', '.join(TASK_NAMES)}", EXIT_USAGE)
    if metaworld and images:
        raise _fail("metaworld demonstrations are state-only: drop --images", EXIT_USAGE)
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
    if metaworld:
        from vfp_il_components.envs.metaworld_demos import write_metaworld_demos

        try:
            written = write_metaworld_demos(
                task_name, out, episodes=episodes, seed=seed, data_format=data_format.value,
                val_ratio=val_ratio, repo_id=repo_id, options=options,
            )  # fmt: skip
        except (TypeError, ValueError, ImportError, RuntimeError) as exc:
            raise _fail(str(exc)) from None
        frames = sum(len(d) for d in written)
        typer.echo(f"wrote {len(written)} episodes ({frames} frames) of {task_name} to {out} [{data_format.value}]")
        return
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
    """Print episodes, lengths, keys, shapes, dtypes and statistics of a dataset.

    Exit codes: 0 done (warnings, if any, on stderr), 2 when the dataset is unreadable or malformed.
    """
    from vfp_il_components.data.errors import DataError
    from vfp_il_components.data.inspect import inspect_dataset

    try:
        summary = inspect_dataset(path)
    except DataError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    _warn(summary.get("warnings", []))
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return
    _print_summary(summary, max_episodes)


@app.command("cache")
def cache(
    path: Path = typer.Argument(..., help="A LeRobot dataset folder."),
    info: bool = typer.Option(False, "--info", help="List this dataset's cache entries instead of building."),
    clear: bool = typer.Option(False, "--clear", help="Remove this dataset's cache entries."),
    keys: list[str] | None = typer.Option(None, "--key", "-k", help="Image/video feature to cache (repeatable)."),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", help="Cache folder (default: $VFP_CACHE_DIR, else ~/.cache/vfp)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Build the frame cache of a LeRobot dataset's image and video features (decoded once into uint8
    memory maps that training reads), or inspect (--info) or remove (--clear) it."""
    from vfp_il_components.data.errors import DataError
    from vfp_il_components.data.frame_cache import (
        FrameCacheUnavailable,
        build_lerobot_cache,
        cache_entries,
        clear_cache,
        human_bytes,
    )

    if info and clear:
        raise _fail("--info and --clear exclude each other", EXIT_USAGE)
    if clear:
        removed = clear_cache(cache_dir, path)
        if as_json:
            sys.stdout.write(json.dumps([str(p) for p in removed], indent=2) + "\n")
        else:
            typer.echo(f"removed {len(removed)} cache entr{'y' if len(removed) == 1 else 'ies'} of {path}")
        return
    if not info:
        try:
            build_lerobot_cache(path, keys or None, cache_dir)
        except (DataError, FrameCacheUnavailable, ImportError) as exc:
            raise _fail(str(exc)) from None
    entries = cache_entries(cache_dir, path)
    if as_json:
        sys.stdout.write(json.dumps(entries, indent=2) + "\n")
        return
    if not entries:
        typer.echo(f"no frame cache for {path} (build it with: vfp data cache {path})")
        return
    for entry in entries:
        state = "complete" if entry["complete"] else "INCOMPLETE (rebuilt on next use)"
        shape = "x".join(str(s) for s in entry.get("shape", []))
        typer.echo(
            f"{entry.get('feature', '?')}: {entry.get('num_frames', '?')} frames of {shape or '?'} (uint8 CHW), "
            f"{human_bytes(entry['bytes'])}, {state}, built in {entry.get('build_seconds', '?')}s\n  {entry['path']}"
        )


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

    console = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)  # file contents printed as written
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
