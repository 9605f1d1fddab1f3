"""Progress reporting: a rich bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import io
import sys

import pytest
from rich.console import Console

from vfp.engine.progress import NullProgress, PlainProgress, RichProgress, make_progress


@pytest.mark.parametrize(("tty", "kind"), [(True, RichProgress), (False, PlainProgress)], ids=["tty", "pipe"])
def test_auto_picks_the_bar_on_a_terminal_and_lines_otherwise(
    monkeypatch: pytest.MonkeyPatch, tty: bool, kind: type
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    assert isinstance(make_progress("auto", is_main=True), kind)


def test_other_processes_report_nothing() -> None:
    assert isinstance(make_progress("rich", is_main=False), NullProgress)


def test_plain_lines_show_step_loss_rate_and_eta() -> None:
    stream = io.StringIO()
    progress = PlainProgress(stream)
    progress.start(0, 100)
    progress.log(10, {"loss": 0.25, "fit": 0.25, "lr/default": 0.1, "steps_per_second": 9.0})
    line = stream.getvalue().splitlines()[-1]
    assert line.startswith("step 10/100  loss 0.25  fit 0.25  ")
    assert " it/s  eta " in line
    assert "lr/default" not in line


def test_the_rich_bar_shows_step_loss_and_rate() -> None:
    buffer = io.StringIO()
    progress = RichProgress(Console(file=buffer, force_terminal=True, width=150))
    progress.start(0, 100)
    progress.log(40, {"loss": 0.125})
    progress.close()
    text = buffer.getvalue()
    assert "40/100" in text
    assert "loss 0.125" in text
    assert "it/s" in text
