"""Fixtures of the env tests: a tiny quickstart run evaluated by the engine in ``avoid_obstacle``, and an
outside ``env`` plugin installed into a folder on ``sys.path``."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from env_helpers import LINE_WORLD, install_plugin, train_with_env


@pytest.fixture(scope="session")
def env_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """quickstart, 20 steps, evaluated by the engine in avoid_obstacle every 10 steps, best kept by episode length."""
    root = tmp_path_factory.mktemp("env-run")
    return train_with_env(
        root / "run",
        root / "demos.hdf5",
        "evaluation.env={type: avoid_obstacle}",
        "checkpointing.best={metric: mean_episode_length, mode: min, keep: 2}",
    )


@pytest.fixture
def line_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The ``vfp-lineworld`` plugin (an ``env`` named ``line_world``) on sys.path and PYTHONPATH."""
    folder = tmp_path / "site"
    install_plugin(folder, "vfp-lineworld", "vfp_lineworld", LINE_WORLD)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]))
    yield folder
    sys.modules.pop("vfp_lineworld", None)
