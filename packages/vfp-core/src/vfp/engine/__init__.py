"""The training engine: trainers from plugins supply losses, the engine owns the loop.

A ``trainer`` component is built as ``target(config, context)`` with a :class:`TrainerContext` and
returns an object satisfying :class:`Trainer` (optionally :class:`EvaluatingTrainer` and
:class:`StatefulTrainer`). :func:`train` runs it; :func:`evaluate_checkpoint` evaluates a saved
policy. ``docs/engine.md`` describes the loop, checkpoints and distributed training.

Modules: ``loop`` (the loop), ``setup`` (the builder), ``step`` (one optimizer step), ``state``
(:class:`TrainState` and the checkpoint format), ``checkpoint`` (checkpoint files), ``options``
(what a run is given and returns), ``session`` (building a trainer, also for evaluation).
"""

from vfp.engine.checkpoint import (
    CheckpointError,
    find_checkpoint,
    load_checkpoint,
    policy_weights,
    read_checkpoint,
    read_latest_checkpoint,
)
from vfp.engine.evaluate import EvaluationReport, evaluate_checkpoint, run_evaluation
from vfp.engine.loop import train
from vfp.engine.options import (
    NonFiniteLossError,
    ResumePoint,
    RunContext,
    RunDirectoryError,
    StoppedAtOnce,
    TrainOptions,
    TrainResult,
)
from vfp.engine.state import CHECKPOINT_FORMAT, CheckpointPayload, TrainState
from vfp.engine.trainer import (
    EvaluatingTrainer,
    EvaluationRequest,
    LossOutput,
    MetricValue,
    StatefulTrainer,
    Trainer,
    TrainerContext,
    samples_actions,
    trainer_state,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "CheckpointPayload",
    "EvaluatingTrainer",
    "EvaluationReport",
    "EvaluationRequest",
    "LossOutput",
    "MetricValue",
    "NonFiniteLossError",
    "ResumePoint",
    "RunContext",
    "RunDirectoryError",
    "StatefulTrainer",
    "StoppedAtOnce",
    "TrainOptions",
    "TrainResult",
    "TrainState",
    "Trainer",
    "TrainerContext",
    "evaluate_checkpoint",
    "find_checkpoint",
    "load_checkpoint",
    "policy_weights",
    "read_checkpoint",
    "read_latest_checkpoint",
    "run_evaluation",
    "samples_actions",
    "train",
    "trainer_state",
]
