"""Progress on the terminal: a rich progress bar on a TTY, plain periodic log lines otherwise."""

from __future__ import annotations

import datetime as _dt
import sys
import time
from collections.abc import Mapping
from typing import IO, Any, Protocol

__all__ = ["NullProgress", "PlainProgress", "ProgressReporter", "RichProgress", "make_progress"]


class ProgressReporter(Protocol):
    """How the loop reports progress; called by the main process only."""

    def start(self, start_step: int, max_steps: int) -> None: ...

    def advance(self, step: int) -> None:
        """Called after every optimizer step: must be cheap."""

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Called on logging steps with the training metrics."""

    def message(self, text: str) -> None: ...

    def close(self) -> None: ...


def _format_eta(seconds: float) -> str:
    return str(_dt.timedelta(seconds=round(seconds))) if seconds == seconds and seconds >= 0 else "?"


class NullProgress:
    """Reports nothing (non-main processes, or when asked to be quiet)."""

    def start(self, start_step: int, max_steps: int) -> None:
        pass

    def advance(self, step: int) -> None:
        pass

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class PlainProgress:
    """One line per logging step: ``step 100/1000  loss 0.1234  fit 0.1234  52.1 it/s  eta 0:00:17``."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.max_steps = 0
        self._last: tuple[int, float] = (0, 0.0)

    def start(self, start_step: int, max_steps: int) -> None:
        self.max_steps = max_steps
        self._last = (start_step, time.perf_counter())
        self.message(f"training from step {start_step} to {max_steps}")

    def advance(self, step: int) -> None:
        pass

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        now = time.perf_counter()
        last_step, last_time = self._last
        rate = (step - last_step) / (now - last_time) if now > last_time and step > last_step else float("nan")
        self._last = (step, now)
        shown = {k: v for k, v in metrics.items() if not k.startswith("lr/") and k != "steps_per_second"}
        values = "  ".join(f"{key} {value:.4g}" for key, value in shown.items())
        eta = _format_eta((self.max_steps - step) / rate) if rate == rate and rate > 0 else "?"
        self.message(f"step {step}/{self.max_steps}  {values}  {rate:.1f} it/s  eta {eta}")

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        pass


class RichProgress:
    """A rich progress bar with step, loss, it/s and ETA, refreshed at most ten times a second."""

    REFRESH_SECONDS = 0.1

    def __init__(self, console: Any = None) -> None:
        """``console``: a ``rich.console.Console`` (default: one on stderr)."""
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = console if console is not None else Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]train[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[rate]} it/s"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task: Any = None
        self._next_refresh = 0.0
        self._last: tuple[int, float] = (0, 0.0)

    def start(self, start_step: int, max_steps: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task("train", total=max_steps, completed=start_step, loss="-", rate="-")
        self._last = (start_step, time.perf_counter())

    def advance(self, step: int) -> None:
        now = time.monotonic()
        if now >= self._next_refresh:
            self._next_refresh = now + self.REFRESH_SECONDS
            self.progress.update(self.task, completed=step)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        now = time.perf_counter()
        last_step, last_time = self._last
        self._last = (step, now)
        rate = (step - last_step) / (now - last_time) if now > last_time else float("nan")
        loss = metrics.get("loss", float("nan"))
        self.progress.update(self.task, completed=step, loss=f"{loss:.4g}", rate=f"{rate:.1f}")

    def message(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        self.progress.stop()


def make_progress(mode: str, is_main: bool) -> ProgressReporter:
    """``auto`` (rich on a terminal, plain lines otherwise), ``rich``, ``plain`` or ``none``."""
    if not is_main or mode == "none":
        return NullProgress()
    if mode == "rich" or (mode == "auto" and sys.stderr.isatty()):
        return RichProgress()
    return PlainProgress()
