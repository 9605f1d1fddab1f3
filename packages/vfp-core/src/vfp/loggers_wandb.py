"""The ``wandb`` callback: training and evaluation metrics, the resolved config and env.json to Weights & Biases.

::

    logging:
      callbacks:
        - {type: jsonl}
        - {type: wandb, project: my-project, tags: [vfp, baseline], mode: online}

The W&B run id is kept in ``RUN/wandb.json``: ``vfp train --resume RUN`` continues the same W&B run
(its curves go on from the resumed step). W&B's local files go under ``RUN/wandb/`` unless ``dir`` is
set (or ``WANDB_DIR``). ``mode: offline`` writes only those local files (``wandb sync`` uploads them
later). If W&B fails (no network, no API key), the logger warns once and training goes on.
Needs the ``wandb`` extra: ``pip install 'vfp-core[wandb]'``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from vfp.components import ComponentConfig
from vfp.loggers_tracking import TrackedRun, TrackerLogger, environment, read_run_id, resolved_config, write_run_id

RUN_ID_FILE = "wandb.json"
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def _new_run_id() -> str:
    """A W&B run id in W&B's own form (eight lowercase letters and digits)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


class WandbLoggerConfig(ComponentConfig):
    """Log to Weights & Biases (the ``wandb`` extra)."""

    project: str = Field("vfp", min_length=1, description="W&B project.")
    entity: str | None = Field(None, description="W&B entity (user or team); null: your default entity.")
    name: str | None = Field(None, description="Run name shown in W&B (null: the run folder's name).")
    group: str | None = Field(None, description="W&B group, e.g. to gather a sweep's or a seed set's runs.")
    tags: list[str] = Field(default_factory=list, description="Tags of the W&B run.")
    mode: Literal["online", "offline", "disabled"] = Field(
        "online", description="online, offline (local files only; `wandb sync` later) or disabled."
    )
    dir: str | None = Field(None, description="Folder for W&B's local files (null: WANDB_DIR, else the run folder).")


class WandbLogger(TrackerLogger):
    """Weights & Biases run per vfp run; metrics as ``train/*`` and ``val/*`` at the training step."""

    tracker = "wandb"
    extra = "wandb"

    def __init__(self, config: WandbLoggerConfig) -> None:
        super().__init__()
        self.wandb: Any = self.require("wandb")
        self.config = config

    @property
    def run(self) -> Any:
        """The W&B run once started."""
        return self.handle

    def _start(self, run: TrackedRun) -> Any:
        record_file = run.run_dir / RUN_ID_FILE
        record = read_run_id(record_file) if run.start_step > 0 else None
        run_id = record["id"] if record and isinstance(record.get("id"), str) else _new_run_id()
        folder = self.config.dir or os.environ.get("WANDB_DIR") or str(run.run_dir)
        os.makedirs(folder, exist_ok=True)
        config = resolved_config(run)
        tracked = self.wandb.init(
            project=self.config.project,
            entity=self.config.entity,
            name=self.config.name or run.run_dir.name,
            group=self.config.group,
            tags=list(self.config.tags) or None,
            mode=self.config.mode,
            dir=folder,
            id=run_id,
            resume="allow",
            config={**config, "env": environment(run)},
            allow_val_change=True,
            reinit="create_new",
        )
        write_run_id(
            record_file,
            {"id": run_id, "project": self.config.project, "entity": self.config.entity, "mode": self.config.mode},
        )
        return tracked

    def _log(self, metrics: Mapping[str, float], step: int) -> None:
        self.run.log(dict(metrics), step=step)

    def _finish(self, status: str) -> None:
        self.run.summary["status"] = status
        for key, value in self.last_evaluation.items():
            self.run.summary[f"final/{key}"] = value
        self.run.finish(exit_code=0 if status == "completed" else 1)
