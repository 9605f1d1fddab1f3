"""Evaluation during training, and the ranking of best checkpoints that follows it.

:class:`PeriodicEvaluation` is the part of the training loop (:mod:`vfp.engine.loop`) that evaluates the
policy when due: with the weights a policy would be saved with (schedule-free averages, EMA swapped
in), on rank 0 while the other processes wait, restoring the modes of training afterwards. It records
which step was evaluated and with what metrics, so that a checkpoint written at the same step is ranked
by ``checkpointing.best`` (:func:`vfp.engine.best.update_best`) once it is both written and evaluated.
An evaluation that raises becomes :class:`EvaluationFailed`; the loop keeps the training done so far.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from vfp.engine.best import update_best
from vfp.engine.evaluate import engine_rolls_out, rollout_during_training, run_evaluation

if TYPE_CHECKING:
    from vfp._plugins import PluginHost
    from vfp.config import ExperimentConfig
    from vfp.engine.progress import ProgressReporter
    from vfp.engine.setup import TrainingRun

__all__ = ["EvaluationFailed", "PeriodicEvaluation", "evaluation_failure_message"]


class EvaluationFailed(RuntimeError):
    """An evaluation raised (its error is the ``__cause__``); training up to ``step`` is checkpointed."""

    def __init__(self, step: int) -> None:
        self.step = step
        super().__init__(f"evaluation at step {step} failed")


class PeriodicEvaluation:
    """Evaluates a training run when due and ranks its checkpoints by the evaluation's metrics."""

    def __init__(
        self, config: ExperimentConfig, host: PluginHost, progress: ProgressReporter, *, is_main: bool
    ) -> None:
        self.config = config
        self.host = host
        self.progress = progress
        self.is_main = is_main
        self.step = -1
        """The last evaluated step (-1: none yet)."""
        self.metrics: dict[str, float] = {}
        """The metrics of that evaluation (empty on the processes other than rank 0)."""

    def evaluate(self, training: TrainingRun) -> None:
        """Evaluate the policy's weights (schedule-free averages, EMA) on rank 0; the others wait.

        Raises :class:`EvaluationFailed` (from the component's error) when the evaluation raises; the
        weights, modes and random states of training are restored first. The caller ranks the step's
        checkpoint afterwards (:meth:`keep_best`).
        """
        state = training.state
        metrics: dict[str, float] = {}
        with state.averaged_weights():
            if self.is_main:
                with state.ema.swapped_in() if state.ema is not None else contextlib.nullcontext():
                    state.models.eval()
                    try:
                        metrics = self._run(training)
                    finally:
                        state.train_mode()
        self.step = state.step
        self.metrics = metrics

    def report(self, training: TrainingRun) -> None:
        """Call ``vfp_on_evaluation_end`` and show the metrics of the last evaluation (rank 0)."""
        if self.is_main and self.metrics:
            step = training.state.step
            self.host.on_evaluation_end(training.run, step, self.metrics)
            shown = "  ".join(f"{k} {v:.4g}" for k, v in self.metrics.items())
            self.progress.message(f"evaluation at step {step}: {shown}")

    def keep_best(self, training: TrainingRun, checkpoint: Path | None, checkpointed_step: int) -> None:
        """Rank the checkpoint of this step by ``checkpointing.best`` once it is both written and evaluated."""
        best, step = self.config.checkpointing.best, training.state.step
        if not (self.is_main and best is not None and checkpoint is not None):
            return
        if self.step == step and checkpointed_step == step:
            update_best(training.directory.checkpoints, step, checkpoint, self.metrics, best)

    def _run(self, training: TrainingRun) -> dict[str, float]:
        state = training.state
        try:
            metrics = run_evaluation(
                training.trainer,
                training.built.data,
                device=training.device,
                precision=self.config.precision,
                seed=self.config.seed,
                step=state.step,
                max_batches=self.config.evaluation.max_batches,
                trainer_evaluates=not engine_rolls_out(self.config, training.trainer),
            )
            weights = "ema" if state.ema is not None else "models"
            metrics.update(
                rollout_during_training(
                    self.config,
                    training.trainer,
                    training.built.context,
                    device=training.device,
                    step=state.step,
                    weights=weights,
                    host=self.host,
                    report=self.progress.message,
                )
            )
            return metrics
        except Exception as exc:
            raise EvaluationFailed(state.step) from exc


def evaluation_failure_message(
    training: TrainingRun, exc: EvaluationFailed, checkpoint: Path | None, checkpointed_step: int
) -> str:
    """What failed, and that the training is kept: the checkpoint to evaluate again or resume from."""
    cause = exc.__cause__
    what = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
    kept = (
        f"training is kept: checkpoint {checkpoint} (step {checkpointed_step}); "
        f"evaluate it again with `vfp eval {training.directory.path}` or continue with "
        f"`vfp train --resume {training.directory.path}`"
        if checkpoint is not None
        else "no checkpoint was written"
    )
    return f"evaluation at step {exc.step} failed ({what}); {kept}"
