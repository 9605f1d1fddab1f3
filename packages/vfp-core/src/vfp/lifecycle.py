"""What lifecycle hooks receive: a typed, torch-free description of the run.

Loggers and callbacks implement ``vfp_on_train_start(run)``, ``vfp_on_step_end(run, step, metrics)``
and the other lifecycle hooks of :mod:`vfp.hookspecs`; ``run`` is a :class:`RunInfo`. This module
imports neither torch nor the engine, so a callback's light module can annotate with it freely.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from vfp.config import ExperimentConfig

__all__ = ["RunInfo", "RunStatus"]

RunStatus = Literal["completed", "interrupted", "failed"]
"""How a run ended, as passed to ``vfp_on_train_end``."""


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    """The run a lifecycle hook is called for (contract 1.1).

    The engine passes an object of a subclass that also carries the live training objects (models,
    optimizers, trainer) for callbacks written against contract 1.0; a callback that only needs what
    is declared here stays torch-free and works with any vfp-core 1.x.
    """

    run_dir: Path
    """The run directory (config, checkpoints, metrics); write files of your own here."""
    name: str
    """Name of the run: its directory's name (``quickstart-20261130-012216``)."""
    experiment: str
    """The experiment: the config's ``name`` key, else the stem of the YAML it came from."""
    config_path: Path | None
    """The YAML file the experiment was loaded from (None when built in Python)."""
    trainer_type: str
    """The trainer's registered type (``config.trainer.type``). (Not ``trainer``: in contract 1.0 ``run.trainer``
    is the live trainer object, which the engine's subclass still provides.)"""
    start_step: int
    """Step the run starts from: 0 for a fresh run, the checkpoint's step on resume."""
    max_steps: int
    """Step at which training stops."""
    is_main: bool = True
    """True in the process that writes the run directory (rank 0); log only there."""
    rank: int = 0
    """Rank of this process in a distributed run (0 in a single process)."""
    world_size: int = 1
    """Number of training processes."""
    config: ExperimentConfig
    """The fully resolved, validated experiment (pydantic, torch-free)."""

    @property
    def resumed(self) -> bool:
        """True when the run continues from a checkpoint."""
        return self.start_step > 0
