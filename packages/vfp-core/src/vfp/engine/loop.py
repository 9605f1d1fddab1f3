"""The training loop: one owner for steps, EMA, evaluation, checkpoints, logging, signals and the end of a run.

:func:`train` checks the run directory and runs a :class:`_Training`: build the run
(:func:`vfp.engine.setup.build_run`), then per optimizer step: the step itself
(:class:`vfp.engine.step.OptimizerStep`), the EMA, logging, evaluation (and the ranking of best
checkpoints, :class:`vfp.engine.periodic.PeriodicEvaluation`) and a checkpoint when due, a stop when
asked; at the end a final evaluation and checkpoint. Trainers supply only the losses.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

import torch

from vfp.engine.checkpoint import capture_rng_state, save_checkpoint
from vfp.engine.distributed import DistributedEnv
from vfp.engine.evaluate import check_env_before_training
from vfp.engine.options import (
    NonFiniteLossError,
    ResumePoint,
    RunContext,
    RunDirectoryError,
    Status,
    StoppedAtOnce,
    TrainOptions,
    TrainResult,
    resolve_host,
)
from vfp.engine.periodic import EvaluationFailed, PeriodicEvaluation, evaluation_failure_message
from vfp.engine.progress import make_progress
from vfp.engine.session import data_info_record
from vfp.engine.setup import ProcessSettings, TrainingRun, build_run, prepare_directory, register_callbacks
from vfp.engine.signals import StopRequest
from vfp.engine.step import Accumulator, OptimizerStep, training_metrics
from vfp.run_layout import RunLayout

if TYPE_CHECKING:
    from vfp._plugins import PluginHost
    from vfp.config import ExperimentConfig

__all__ = [
    "NonFiniteLossError",
    "ResumePoint",
    "RunContext",
    "RunDirectoryError",
    "TrainOptions",
    "TrainResult",
    "train",
]


def train(config: ExperimentConfig, options: TrainOptions) -> TrainResult:
    """Train ``config`` into ``options.run_dir`` (continuing ``options.resume`` if given).

    Returns how the run ended; raises for config errors (``vfp.config.ConfigError``), components
    that do not follow their protocol, and failures inside components.
    """
    layout = RunLayout(options.run_dir)
    if options.resume is None and layout.has_checkpoints():
        raise RunDirectoryError(
            f"{layout.path} already holds a run (it has checkpoints); continue it with "
            f"`vfp train --resume {layout.path}` or choose another --run-dir"
        )
    return _Training(config, options, resolve_host(options.host)).run()


class _Training:
    """One training run, from set-up to teardown."""

    def __init__(self, config: ExperimentConfig, options: TrainOptions, host: PluginHost) -> None:
        self.config = config
        self.options = options
        self.host = host
        self.dist = DistributedEnv.from_environment()
        self.is_main = self.dist.is_main
        self.stop = StopRequest()
        self.progress = make_progress(options.progress, self.is_main)
        self.last_checkpoint = options.resume.path if options.resume else None
        self.checkpointed_step = -1
        self.evaluation = PeriodicEvaluation(config, host, self.progress, is_main=self.is_main)
        self.settings: ProcessSettings | None = None
        self.training: TrainingRun | None = None
        self._torn_down = False

    def run(self) -> TrainResult:
        """Set up, train to ``max_steps`` (or until stopped), evaluate and checkpoint at the end."""
        try:
            with self.stop:
                self.settings = ProcessSettings(self.config.deterministic, self.config.threads)
                training = self.training = build_run(self.config, self.options, self.host, self.dist)
                if self.is_main:
                    prepare_directory(training, self.options, self.host, self.dist)
                    self._write_status("running")
                    register_callbacks(training, self.host)
                return self._train(training)
        except KeyboardInterrupt as exc:
            self._teardown("interrupted", f"KeyboardInterrupt: {exc}" if str(exc) else "KeyboardInterrupt")
            if isinstance(exc, StoppedAtOnce):
                raise
            step = self.training.state.step if self.training is not None else 0
            checkpoint_step = self.checkpointed_step if self.checkpointed_step >= 0 else None
            if checkpoint_step is None and self.options.resume is not None:
                checkpoint_step = self.options.resume.step
            raise StoppedAtOnce(str(exc), step, self.last_checkpoint, checkpoint_step) from exc
        except BaseException as exc:
            self._teardown("failed", f"{type(exc).__name__}: {exc}")
            raise

    def _train(self, training: TrainingRun) -> TrainResult:
        """Train from the built run to the end: the loop, then the final evaluation and checkpoint."""
        state, max_steps = training.state, self.config.training.max_steps
        message = ""
        if self.options.resume is not None and state.step >= max_steps:
            message = f"the run is already at step {state.step} (max_steps {max_steps}); raise --max-steps to extend it"
        if self.is_main:
            check_env_before_training(self.config, training.trainer, training.built.context.info, self.host)
            self.host.on_train_start(training.run)
            self.progress.start(state.step, max_steps)
        optimizer_step = OptimizerStep(
            state,
            training.stream,
            training.compute_losses,
            ddp=training.ddp,
            trainer_type=self.config.trainer.type,
            accum=self.config.training.grad_accum_steps,
            clip=self.config.training.grad_clip_norm,
            precision=self.config.precision,
            device=training.device,
            dist=self.dist,
            stop=self.stop,
        )
        loop_started = time.perf_counter()
        try:
            self._loop(training, optimizer_step)
        except NonFiniteLossError as exc:
            where = f"; the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint else ""
            return self._finish("failed", f"stopped: {exc}; the step was not applied{where}", state.step)
        except EvaluationFailed as exc:
            return self._finish("failed", self._evaluation_failure_message(training, exc), state.step)
        steps_done = state.step - training.run.start_step
        seconds = time.perf_counter() - loop_started
        status: Status
        if not self._stopping(optimizer_step):
            # the final checkpoint comes first: an evaluation that fails (or is stopped) never loses training
            if self.checkpointed_step != state.step and state.step > training.run.start_step:
                self._checkpoint(training)
            if self.evaluation.step != state.step and state.step > training.run.start_step:
                try:
                    self._evaluate(training)
                except EvaluationFailed as exc:
                    return self._finish("failed", self._evaluation_failure_message(training, exc), state.step)
        if self._stopping(optimizer_step) or self._stop_asked_at_the_end(training):
            if self.checkpointed_step != state.step:
                self._checkpoint(training)
            status = "interrupted"
            name = self.stop.signal.name if self.stop.signal is not None else "a signal"
            message = (
                f"stopped by {name} at step {state.step}; checkpoint {self.last_checkpoint}. "
                f"Resume with: vfp train --resume {training.directory.path}"
            )
        else:
            status = "completed"
            message = message or f"finished at step {state.step}; checkpoint {self.last_checkpoint}"
        result = self._finish(status, message, state.step)
        result.steps_per_second = steps_done / seconds if seconds > 0 and steps_done else float("nan")
        return result

    def _evaluation_failure_message(self, training: TrainingRun, exc: EvaluationFailed) -> str:
        return evaluation_failure_message(training, exc, self.last_checkpoint, self.checkpointed_step)

    def _loop(self, training: TrainingRun, optimizer_step: OptimizerStep) -> None:
        """Step, average, log, evaluate, checkpoint, until ``max_steps`` or a stop."""
        state, context, config = training.state, training.built.context, self.config
        max_steps, log_every = config.training.max_steps, config.logging.every
        eval_every, checkpoint_every = config.evaluation.every, config.checkpointing.every
        acc = Accumulator()
        while state.step < max_steps:
            optimizer_step(acc)
            state.step += 1
            context.step = state.step
            if state.ema is not None:
                state.ema.update(state.step)
            if self.is_main:
                self.progress.advance(state.step)
            if state.step % log_every == 0 or state.step == max_steps:
                metrics = training_metrics(acc, dist=self.dist, optimizers=state.optimizers, device=training.device)
                acc = Accumulator()
                if self.is_main:
                    self.host.on_step_end(training.run, state.step, metrics)
                    self.progress.log(state.step, metrics)
            if _due(state.step, checkpoint_every) and state.step < max_steps:
                self._checkpoint(training)
            if _due(state.step, eval_every) and state.step < max_steps:
                try:
                    self._evaluate(training)
                except EvaluationFailed:
                    if self.checkpointed_step != state.step and not self.dist.enabled:
                        self._checkpoint(training)  # keep the training done so far
                    raise
            if self._stopping(optimizer_step):
                return

    def _stop_asked_at_the_end(self, training: TrainingRun) -> bool:
        """A signal arrived during the final checkpoint or evaluation (agreed by every process under DDP)."""
        if not self.dist.enabled:
            return self.stop.requested
        flags = torch.tensor([1 if self.stop.requested else 0], device=training.device)
        return bool(self.dist.any_true(flags).item() > 0)

    def _stopping(self, optimizer_step: OptimizerStep) -> bool:
        """A stop was asked for (in data parallelism: agreed by all processes at the last step)."""
        return optimizer_step.stop_agreed if self.dist.enabled else self.stop.requested

    def _evaluate(self, training: TrainingRun) -> None:
        """Evaluate (raises :class:`EvaluationFailed`), rank this step's checkpoint, report the metrics."""
        self.evaluation.evaluate(training)
        self._keep_best(training)
        self.evaluation.report(training)

    def _keep_best(self, training: TrainingRun) -> None:
        self.evaluation.keep_best(training, self.last_checkpoint, self.checkpointed_step)

    def _checkpoint(self, training: TrainingRun) -> None:
        """Save the state with the schedule-free averaged weights; every process takes part (random states)."""
        state, context = training.state, training.built.context
        with state.averaged_weights():
            payload = state.capture(
                config=self.config.model_dump(mode="json"),
                rng=self.dist.gather_objects(capture_rng_state()),
                normalization=context.normalization_stats,
                data_info=data_info_record(context.info),
            )
            if self.is_main:
                self.last_checkpoint = save_checkpoint(
                    training.directory.checkpoints, state.step, payload, self.config.checkpointing.keep_last
                )
        self.checkpointed_step = state.step
        self._keep_best(training)
        if self.is_main and self.last_checkpoint is not None:
            self._write_status("running")
            self.host.on_checkpoint_saved(training.run, state.step, self.last_checkpoint)

    def _write_status(self, status: str, message: str = "") -> None:
        """Record the run's status in ``status.json`` (rank 0); a failing write never stops the run."""
        training = self.training
        if training is None or not self.is_main:
            return
        with contextlib.suppress(OSError):
            training.directory.write_status(
                status, step=training.state.step, max_steps=self.config.training.max_steps, message=message
            )

    def _finish(self, status: Status, message: str, step: int) -> TrainResult:
        self._teardown(status, message)
        if self.is_main and message and status != "failed":  # failures are the caller's to report
            self.progress.message(message)
        return TrainResult(
            status=status,
            step=step,
            run_dir=self.options.run_dir,
            checkpoint=self.last_checkpoint,
            message=message,
            signal_exit_code=self.stop.exit_code if status == "interrupted" else None,
        )

    def _teardown(self, status: Status, message: str = "") -> None:
        if self._torn_down:
            return
        self._torn_down = True
        self.progress.close()
        training = self.training
        self._write_status(status, message)
        if training is not None:
            training.stream.close()
            if self.is_main:
                self.host.on_train_end(training.run, status)
            for callback in training.callbacks:
                self.host.unregister_object(callback)
            training.callbacks.clear()
        if self.settings is not None:
            self.settings.restore()
        with contextlib.suppress(Exception):
            self.dist.barrier() if status == "completed" else None
        self.dist.shutdown()


def _due(step: int, every: int) -> bool:
    return every > 0 and step % every == 0
