"""Continuing a run: its newest readable checkpoint and the config saved in it, with overrides."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from vfp.engine.checkpoint import read_latest_checkpoint
from vfp.engine.options import ResumePoint, resolve_host
from vfp.engine.run import ConfigEditedError, config_file_edits
from vfp.run_layout import RunLayout, run_dir_of

if TYPE_CHECKING:
    from vfp._plugins import PluginHost
    from vfp.config import ExperimentConfig

__all__ = ["prepare_resume"]


def prepare_resume(
    location: Path, overrides: Iterable[str] = (), host: PluginHost | None = None
) -> tuple[ExperimentConfig, ResumePoint]:
    """Load the checkpoint to continue and validate its saved config with ``overrides`` applied.

    ``training.max_steps=N`` with a larger N extends the run. Raises ``CheckpointError`` when no
    checkpoint can be read, ``ConfigError`` for bad overrides, and :class:`ConfigEditedError` when the
    run's ``config.yaml`` was edited by hand (with what differs). ``host``: the plugin host the
    command line resolved (None: the process-wide host).
    """
    from vfp.config import LocatedData, apply_overrides, validate

    host = resolve_host(host)
    path, checkpoint = read_latest_checkpoint(location)
    overrides = list(overrides)
    located = apply_overrides(LocatedData(copy.deepcopy(checkpoint.config), {}), overrides)
    config = validate(located, host.registry, f"{path} (config saved in the checkpoint)")
    config_file = RunLayout(run_dir_of(location)).config_file
    edits = config_file_edits(config_file, checkpoint.config, config.model_dump(mode="json"))
    if edits:
        shown = "\n  ".join(edits[:20]) + (f"\n  ... and {len(edits) - 20} more" if len(edits) > 20 else "")
        raise ConfigEditedError(
            f"{config_file} was edited after the run wrote it; a resumed run uses the config saved in its "
            f"checkpoint, so these edits would be ignored and overwritten:\n  {shown}\n"
            "To apply a change, pass it as an override (`vfp train --resume RUN_DIR KEY=VALUE`); to resume "
            "with the saved config, delete or restore config.yaml (it is rewritten)."
        )
    return config, ResumePoint(path, checkpoint)
