"""Continuing a run: its newest readable checkpoint and the config saved in it, with overrides."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from vfp.engine.checkpoint import load_latest_checkpoint
from vfp.engine.loop import ResumePoint

if TYPE_CHECKING:
    from vfp._plugins import PluginHost
    from vfp.config import ExperimentConfig

__all__ = ["prepare_resume"]


def prepare_resume(
    location: Path, overrides: Iterable[str] = (), host: PluginHost | None = None
) -> tuple[ExperimentConfig, ResumePoint]:
    """Load the checkpoint to continue and validate its saved config with ``overrides`` applied.

    ``training.max_steps=N`` with a larger N extends the run. Raises ``CheckpointError`` when no
    checkpoint can be read and ``ConfigError`` for bad overrides.
    """
    from vfp._plugins import get_host
    from vfp.config import LocatedData, apply_overrides, validate

    host = host or get_host()
    path, payload = load_latest_checkpoint(location)
    located = apply_overrides(LocatedData(copy.deepcopy(payload["config"]), {}), overrides)
    config = validate(located, host.registry, f"{path} (config saved in the checkpoint)")
    return config, ResumePoint(path, payload)
