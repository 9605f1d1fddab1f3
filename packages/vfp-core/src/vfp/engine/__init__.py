"""The training engine: trainers from plugins supply losses, the engine owns the loop.

A ``trainer`` component is built as ``target(config, context)`` with a :class:`TrainerContext` and
returns an object satisfying :class:`Trainer` (optionally :class:`EvaluatingTrainer` and
:class:`StatefulTrainer`). :func:`train` runs it; :func:`evaluate_checkpoint` evaluates a saved
policy. ``docs/engine.md`` describes the loop, checkpoints and distributed training.
"""

from vfp.engine.checkpoint import CheckpointError, find_checkpoint, load_checkpoint, policy_weights
from vfp.engine.evaluate import EvaluationReport, evaluate_checkpoint, run_evaluation
from vfp.engine.loop import (
    NonFiniteLossError,
    ResumePoint,
    RunContext,
    RunDirectoryError,
    TrainOptions,
    TrainResult,
    train,
)
from vfp.engine.trainer import (
    EvaluatingTrainer,
    EvaluationRequest,
    LossOutput,
    MetricValue,
    StatefulTrainer,
    Trainer,
    TrainerContext,
)

__all__ = [
    "CheckpointError",
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
    "TrainOptions",
    "TrainResult",
    "Trainer",
    "TrainerContext",
    "evaluate_checkpoint",
    "find_checkpoint",
    "load_checkpoint",
    "policy_weights",
    "run_evaluation",
    "train",
]
