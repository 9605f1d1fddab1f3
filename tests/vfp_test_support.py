"""What tests across the suite share: the ``vfp`` command as a user runs it, and config problems.

(A uniquely named module at the root of ``tests/``: pytest puts this folder on ``sys.path`` for the
root conftest, so every test module can ``from vfp_test_support import ...``. The same helpers are
offered as fixtures in ``tests/conftest.py``.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vfp.config import ConfigError, load_experiment

Problems = dict[str, tuple[int | None, str]]
"""Config problems by key path: ``{"optimizers.default.lr": (line, message)}``."""


def vfp(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m vfp ARGS`` in a subprocess, as a user would (output captured, never raises)."""
    return subprocess.run(
        [sys.executable, "-m", "vfp", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=False,
    )


def config_problems(path: Path | str, *overrides: str) -> Problems:
    """The problems ``load_experiment`` reports for ``path`` with ``overrides`` (it must refuse the config)."""
    with pytest.raises(ConfigError) as info:
        load_experiment(path, overrides)
    return {issue.path or "": (issue.line, issue.message) for issue in info.value.issues}


def line_of(path: Path, text: str) -> int:
    """1-based number of the first line of ``path`` that contains ``text``."""
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)
