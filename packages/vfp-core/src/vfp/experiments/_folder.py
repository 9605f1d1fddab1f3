"""Reading one run folder: config, environment, metrics, checkpoints and the status inferred from them.

Only the standard library and PyYAML are imported here: listing and comparing runs never loads torch
(or numpy). The layout read is the one :mod:`vfp.engine.run` writes::

    RUN/config.yaml            resolved config (``training.max_steps`` is the planned length)
    RUN/env.json               when, where and how the run was started (``previous`` sessions on resume)
    RUN/metrics.jsonl          {"step": N, "split": "train"|"val", metric: value, ...} per line
    RUN/checkpoints/step_*.pt  and ``latest``, a one-line pointer to the newest one

The engine records how a run stands in ``RUN/status.json`` (``running`` at start and at each checkpoint,
then ``completed``, ``interrupted`` or ``failed``); :func:`infer_status` trusts it, except that a
``running`` record whose process is gone (same host, dead pid: a ``kill -9``) counts as ``failed``.
Runs written before status.json existed are judged from their files:
``completed`` when the newest checkpoint is at the planned last step, ``interrupted`` when the newest
checkpoint is at the last logged step (the engine checkpoints before it stops on SIGINT/SIGTERM),
``running`` when the run's files changed in the last few minutes, ``failed`` otherwise (an exception,
a non-finite loss, or a killed process).
"""

from __future__ import annotations

import datetime as _dt
import glob as _glob
import json
import math
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import yaml

__all__ = [
    "MetricSeries",
    "RunFolder",
    "RunReadError",
    "expand_runs",
    "find_runs",
    "is_run_folder",
    "read_run",
]

CONFIG_FILE: Final = "config.yaml"
ENV_FILE: Final = "env.json"
STATUS_FILE: Final = "status.json"
METRICS_FILE: Final = "metrics.jsonl"
CHECKPOINTS_DIR: Final = "checkpoints"
LATEST_POINTER: Final = "latest"
RUNNING_WINDOW_S: Final = 300.0
"""A run whose files changed this recently (and that has not completed) is reported as running."""

_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")
_SEARCH_DEPTH = 4

Status = Literal["completed", "interrupted", "failed", "running"]
MAXIMIZED_HINTS: Final = ("success", "accuracy", "reward", "return", "entropy", "score", "auc", "mode_freq")
"""Metrics whose name contains one of these are better when larger; every other metric when smaller."""


class RunReadError(ValueError):
    """A path that is not a readable run (the message names the file, and the line where it applies)."""


def better_is_higher(metric: str) -> bool:
    """Whether larger values of ``metric`` are better (by its name: success rates, rewards, entropies)."""
    name = metric.rsplit("/", 1)[-1] if metric.startswith(("train/", "val/")) else metric
    return any(hint in name.lower() for hint in MAXIMIZED_HINTS)


@dataclass(frozen=True)
class MetricSeries:
    """One metric of one split over steps."""

    name: str
    """``split/metric``, for example ``val/loss``."""
    steps: tuple[int, ...]
    values: tuple[float, ...]

    @property
    def last(self) -> float:
        return self.values[-1] if self.values else math.nan

    def best(self, maximize: bool | None = None) -> float:
        finite = [v for v in self.values if math.isfinite(v)]
        if not finite:
            return math.nan
        higher = better_is_higher(self.name) if maximize is None else maximize
        return max(finite) if higher else min(finite)

    def mean_of_last(self, k: int) -> float:
        finite = [v for v in self.values[-k:] if math.isfinite(v)]
        return sum(finite) / len(finite) if finite else math.nan


@dataclass
class RunFolder:
    """What one run folder says about its run."""

    path: Path
    config: dict[str, Any]
    env: dict[str, Any]
    records: list[dict[str, Any]]
    """The metrics.jsonl lines, in order."""
    checkpoint_steps: list[int]
    latest_checkpoint_step: int | None
    warnings: list[str] = field(default_factory=list)
    last_modified: float = 0.0
    truncated_metrics: bool = False
    """The last metrics line was half written (the process was killed while writing it)."""
    recorded_status: dict[str, Any] = field(default_factory=dict)
    """``status.json`` as the engine wrote it (empty for runs from before it existed)."""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def experiment(self) -> str:
        """The config's ``name``, else the stem of the YAML it came from, else the folder's name."""
        name = self.config.get("name")
        if isinstance(name, str) and name:
            return name
        source = self.env.get("config_source")
        if isinstance(source, str) and source:
            return Path(source).stem
        return self.name

    @property
    def trainer(self) -> str:
        trainer = self.config.get("trainer")
        return str(trainer.get("type", "?")) if isinstance(trainer, dict) else "?"

    @property
    def seed(self) -> int | None:
        seed = self.config.get("seed")
        return seed if isinstance(seed, int) else None

    @property
    def planned_steps(self) -> int | None:
        training = self.config.get("training")
        steps = training.get("max_steps") if isinstance(training, dict) else None
        return steps if isinstance(steps, int) else None

    @property
    def steps_done(self) -> int:
        logged = max((int(r["step"]) for r in self.records), default=0)
        return max(logged, self.latest_checkpoint_step or 0)

    @property
    def started(self) -> str | None:
        """When the first session of this run started (ISO 8601, UTC)."""
        previous = self.env.get("previous")
        if isinstance(previous, list) and previous and isinstance(previous[0], dict):
            first = previous[0].get("started")
            if isinstance(first, str):
                return first
        started = self.env.get("started")
        return started if isinstance(started, str) else None

    @property
    def git_revision(self) -> str | None:
        """The short commit of the config's repository, with ``+dirty`` when it had changes."""
        git = self.env.get("git")
        if not isinstance(git, dict) or not isinstance(git.get("commit"), str):
            return None
        return str(git["commit"])[:10] + ("+dirty" if git.get("dirty") else "")

    @property
    def status(self) -> Status:
        return infer_status(self)

    def metric_names(self) -> list[str]:
        names: dict[str, None] = {}
        for record in self.records:
            split = record.get("split", "train")
            for key in record:
                if key not in ("step", "split"):
                    names[f"{split}/{key}"] = None
        return list(names)

    def series(self, metric: str) -> MetricSeries:
        """``val/loss``, ``train/loss``; a bare name is the validation series when there is one."""
        split, name = _split_metric(metric, self)
        steps: list[int] = []
        values: list[float] = []
        for record in self.records:
            if record.get("split", "train") == split and name in record:
                value = record[name]
                steps.append(int(record["step"]))
                values.append(float(value) if isinstance(value, int | float) else math.nan)
        return MetricSeries(f"{split}/{name}", tuple(steps), tuple(values))

    def main_metric(self) -> str:
        """The metric a run is judged by: a success rate when the run was evaluated in closed loop,
        else the validation loss, else the training loss."""
        names = self.metric_names()
        for candidate in ("val/success_rate", "val/loss", "train/loss"):
            if candidate in names:
                return candidate
        return names[0] if names else "val/loss"


def _split_metric(metric: str, run: RunFolder | None = None) -> tuple[str, str]:
    if "/" in metric:
        split, name = metric.split("/", 1)
        if split in ("train", "val"):
            return split, name
    if run is not None and not any(r.get("split") == "val" and metric in r for r in run.records):
        return "train", metric
    return "val", metric


def _process_alive(pid: object, host: object) -> bool | None:
    """Whether the recorded training process still runs (None: it ran on another host, cannot tell)."""
    import os
    import socket

    if not isinstance(pid, int) or host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def infer_status(run: RunFolder, now: float | None = None) -> Status:
    recorded = run.recorded_status.get("status")
    if recorded in ("completed", "interrupted", "failed"):
        return recorded  # type: ignore[no-any-return]
    if recorded == "running":
        alive = _process_alive(run.recorded_status.get("pid"), run.recorded_status.get("host"))
        if alive is True:
            return "running"
        if alive is False:
            return "failed"
    planned = run.planned_steps
    latest = run.latest_checkpoint_step
    if planned is not None and latest is not None and latest >= planned:
        return "completed"
    if (now if now is not None else time.time()) - run.last_modified < RUNNING_WINDOW_S:
        return "running"
    logged = max((int(r["step"]) for r in run.records), default=0)
    if latest is not None and latest >= logged and not run.truncated_metrics:
        return "interrupted"
    return "failed"


def is_run_folder(path: Path) -> bool:
    """A folder with a resolved ``config.yaml`` and at least one of env.json, metrics.jsonl, checkpoints/."""
    return (path / CONFIG_FILE).is_file() and any(
        (path / part).exists() for part in (ENV_FILE, METRICS_FILE, CHECKPOINTS_DIR)
    )


def _read_metrics(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The metric records; a half-written last line is dropped (reported by the caller)."""
    if not path.exists():
        return [], False
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    records: list[dict[str, Any]] = []
    truncated = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                raise ValueError("not an object with an integer 'step'")
        except ValueError as exc:
            is_last = number == len(lines) or all(not rest.strip() for rest in lines[number:])
            if is_last and not text.endswith("\n"):
                truncated = True
                continue
            raise RunReadError(f"{path}:{number}: not a metrics record ({exc}): {line[:80]!r}") from None
        records.append(record)
    return records, truncated


def _checkpoint_steps(folder: Path) -> tuple[list[int], int | None]:
    if not folder.is_dir():
        return [], None
    steps = sorted(int(m.group(1)) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name)))
    latest: int | None = steps[-1] if steps else None
    pointer = folder / LATEST_POINTER
    if pointer.is_file():
        match = _STEP_FILE.match(pointer.read_text(encoding="utf-8", errors="replace").strip())
        if match and (folder / match.group(0)).exists():
            latest = int(match.group(1))
    return steps, latest


def _last_modified(path: Path) -> float:
    times = [p.stat().st_mtime for p in (path / METRICS_FILE, path / ENV_FILE, path / CHECKPOINTS_DIR) if p.exists()]
    return max(times, default=0.0)


def read_run(path: Path) -> RunFolder:
    """Read a run folder; :class:`RunReadError` for a folder that is not a run or a corrupt file."""
    if not path.exists():
        raise RunReadError(f"{path}: no such folder")
    if not path.is_dir() or not is_run_folder(path):
        raise RunReadError(
            f"{path}: not a run folder (a run folder holds config.yaml and env.json or metrics.jsonl, "
            "as `vfp train` writes them)"
        )
    config_file = path / CONFIG_FILE
    try:
        config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{config_file}:{mark.line + 1}" if mark is not None else str(config_file)
        raise RunReadError(f"{where}: unreadable YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(config, dict):
        raise RunReadError(f"{config_file}: expected a mapping, got {type(config).__name__}")
    env: dict[str, Any] = {}
    env_file = path / ENV_FILE
    warnings: list[str] = []
    if env_file.exists():
        try:
            loaded = json.loads(env_file.read_text(encoding="utf-8"))
            env = loaded if isinstance(loaded, dict) else {}
        except ValueError as exc:
            warnings.append(f"{env_file}: unreadable ({exc}); ignored")
    records, truncated = _read_metrics(path / METRICS_FILE)
    if truncated:
        warnings.append(
            f"{path / METRICS_FILE}: the last line is half written (the run was killed while logging); ignored"
        )
    steps, latest = _checkpoint_steps(path / CHECKPOINTS_DIR)
    recorded: dict[str, Any] = {}
    status_file = path / STATUS_FILE
    if status_file.exists():
        try:
            loaded_status = json.loads(status_file.read_text(encoding="utf-8"))
            recorded = loaded_status if isinstance(loaded_status, dict) else {}
        except ValueError as exc:
            warnings.append(f"{status_file}: unreadable ({exc}); ignored")
    return RunFolder(
        path=path,
        config=config,
        env=env,
        records=records,
        checkpoint_steps=steps,
        latest_checkpoint_step=latest,
        warnings=warnings,
        recorded_status=recorded,
        last_modified=_last_modified(path),
        truncated_metrics=truncated,
    )


def find_runs(root: Path, depth: int = _SEARCH_DEPTH) -> Iterator[Path]:
    """Run folders at or under ``root`` (not descending into a run), sorted by path."""
    if is_run_folder(root):
        yield root
        return
    if depth <= 0 or not root.is_dir():
        return
    for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        yield from find_runs(child, depth - 1)


def expand_runs(patterns: Sequence[str]) -> list[Path]:
    """Run folders named by paths, globs, or folders holding runs; :class:`RunReadError` when one names none.

    Each pattern must match at least one run: a glob that matches nothing, or a folder that neither is a
    run nor holds one, is an error that names it.
    """
    found: dict[Path, None] = {}
    for pattern in patterns:
        matches = [Path(p) for p in sorted(_glob.glob(pattern))] if _glob.has_magic(pattern) else [Path(pattern)]
        if not matches:
            raise RunReadError(f"{pattern}: matches no file or folder")
        runs: list[Path] = []
        for match in matches:
            if not match.exists():
                raise RunReadError(f"{match}: no such folder")
            runs.extend(find_runs(match))
        if not runs:
            what = "matches no run folder" if _glob.has_magic(pattern) else "is not a run folder and holds none"
            raise RunReadError(
                f"{pattern}: {what} (a run folder holds config.yaml and env.json or metrics.jsonl, "
                "as `vfp train` writes them)"
            )
        found.update(dict.fromkeys(runs))
    return list(found)


def read_runs(paths: Iterable[Path]) -> list[RunFolder]:
    return [read_run(path) for path in paths]


def format_date(iso: str | None) -> str:
    if not iso:
        return "?"
    try:
        moment = _dt.datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return moment.strftime("%Y-%m-%d %H:%M")


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` as ``{"a.b": 1}``; lists are leaves."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat
