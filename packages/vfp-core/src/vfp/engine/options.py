"""What a training run is given and what it returns: options, the resume point, the result, the errors,
and :class:`RunContext`, what lifecycle hooks receive as ``run``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from torch import nn

from vfp.engine.state import CheckpointPayload, TrainState
from vfp.engine.trainer import Trainer
from vfp.lifecycle import RunInfo, RunStatus
from vfp.protocols import OptimizerBundle

if TYPE_CHECKING:
    from vfp._plugins import PluginHost

__all__ = [
    "NonFiniteLossError",
    "ResumePoint",
    "RunContext",
    "RunDirectoryError",
    "Status",
    "StoppedAtOnce",
    "TrainOptions",
    "TrainResult",
    "resolve_host",
]

Status = RunStatus
"""How a run ended: ``completed``, ``interrupted`` or ``failed``."""


class NonFiniteLossError(RuntimeError):
    """A loss term (or the gradient) became NaN or Inf; the step was not applied."""

    def __init__(self, what: str, step: int, value: float) -> None:
        self.what = what
        self.step = step
        super().__init__(f"{what} is {value} at step {step}")


class RunDirectoryError(RuntimeError):
    """A run directory that cannot be used as asked (for example a fresh run into an existing one)."""


class StoppedAtOnce(KeyboardInterrupt):
    """The run stopped at once (a second Ctrl-C, or a ``KeyboardInterrupt`` raised by a component or hook).

    Carries what the command line reports: the step reached and the newest checkpoint, if any.
    """

    def __init__(self, reason: str, step: int, checkpoint: Path | None, checkpoint_step: int | None) -> None:
        self.reason = reason
        self.step = step
        self.checkpoint = checkpoint
        self.checkpoint_step = checkpoint_step
        super().__init__(reason)


def resolve_host(host: PluginHost | None) -> PluginHost:
    """The plugin host to use: the one given (the command line always passes one), else the process-wide one.

    Called once, at the engine's entry points (:func:`~vfp.engine.train`, ``evaluate_checkpoint``,
    ``prepare_resume``); everything below receives the host it resolved.
    """
    if host is not None:
        return host
    from vfp._plugins import get_host

    return get_host()


@dataclass(frozen=True, init=False)
class ResumePoint:
    """A loaded checkpoint to continue from."""

    path: Path
    checkpoint: CheckpointPayload
    """The checkpoint, typed (any readable format)."""

    def __init__(self, path: Path, payload: CheckpointPayload | Mapping[str, Any]) -> None:
        if not isinstance(payload, CheckpointPayload):
            payload = CheckpointPayload.from_dict(payload, str(path))
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "checkpoint", payload)

    @property
    def payload(self) -> dict[str, Any]:
        """The checkpoint as a file's dict (the 1.0 API; prefer :attr:`checkpoint`)."""
        return self.checkpoint.to_dict()

    @property
    def step(self) -> int:
        return self.checkpoint.step


@dataclass
class TrainOptions:
    """How to run (what to train is the config)."""

    run_dir: Path
    resume: ResumePoint | None = None
    config_source: Path | None = None
    """The YAML the config came from (recorded in env.json with its git revision)."""
    command: Sequence[str] = ()
    """The command line, recorded in env.json."""
    progress: Literal["auto", "rich", "plain", "none"] = "auto"
    host: PluginHost | None = None
    """The plugin host to build components and call hooks with (None: the process-wide host)."""


@dataclass
class TrainResult:
    """How a run ended."""

    status: Status
    step: int
    run_dir: Path
    checkpoint: Path | None
    """The newest checkpoint written by this run (or resumed from), if any."""
    message: str = ""
    signal_exit_code: int | None = None
    """130 after SIGINT, 143 after SIGTERM."""
    steps_per_second: float = float("nan")

    @property
    def exit_code(self) -> int:
        if self.status == "completed":
            return 0
        if self.status == "interrupted":
            return self.signal_exit_code or 130
        return 1


@dataclass(frozen=True, kw_only=True)
class RunContext(RunInfo):
    """What lifecycle hooks receive as ``run``: the :class:`~vfp.RunInfo` and, for callbacks written
    against contract 1.0, the live training objects (``models``, ``optimizers``, ``trainer``, ``step``).

    A callback that needs only the :class:`~vfp.RunInfo` fields should annotate ``run: vfp.RunInfo``.
    """

    models: nn.ModuleDict
    optimizers: Mapping[str, OptimizerBundle]
    trainer: Trainer
    state: TrainState = field(repr=False, compare=False)
    """The live training state (read it; the engine owns it)."""

    @property
    def step(self) -> int:
        """Optimizer steps completed so far."""
        return self.state.step
