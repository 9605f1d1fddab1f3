"""The training loop: one owner for steps, precision, accumulation, clipping, EMA, evaluation,
checkpoints, logging, signals and data parallelism. Trainers supply only the losses."""

from __future__ import annotations

import contextlib
import functools
import math
import signal
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from vfp.engine.building import build_callbacks, build_optimizers
from vfp.engine.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    capture_rng_state,
    remove_stale_temporaries,
    restore_rng_state,
    save_checkpoint,
)
from vfp.engine.distributed import DistributedEnv
from vfp.engine.ema import WeightAverage
from vfp.engine.evaluate import run_evaluation
from vfp.engine.progress import ProgressReporter, make_progress
from vfp.engine.run import RunDirectory, collect_environment
from vfp.engine.runtime import autocast, derive_seed, resolve_device, seed_everything, set_deterministic
from vfp.engine.sampler import BatchStream, ShardedBatchSampler
from vfp.engine.session import BuiltTrainer, build_trainer, data_info_record
from vfp.engine.signals import StopRequest
from vfp.engine.trainer import StatefulTrainer, Trainer
from vfp.protocols import Batch, OptimizerBundle

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

TRAIN_STREAM = 1
_NO_CONTEXT = contextlib.nullcontext()
Status = Literal["completed", "interrupted", "failed"]


class NonFiniteLossError(RuntimeError):
    """A loss term (or the gradient) became NaN or Inf; the step was not applied."""

    def __init__(self, what: str, step: int, value: float) -> None:
        self.what = what
        self.step = step
        super().__init__(f"{what} is {value} at step {step}")


class RunDirectoryError(RuntimeError):
    """A run directory that cannot be used as asked (for example a fresh run into an existing one)."""


@dataclass(frozen=True)
class ResumePoint:
    """A loaded checkpoint to continue from."""

    path: Path
    payload: Mapping[str, Any]


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


@dataclass
class RunContext:
    """What lifecycle hooks (loggers, callbacks) receive as ``run``."""

    run_dir: Path
    start_step: int
    max_steps: int
    is_main: bool
    rank: int
    world_size: int
    config: ExperimentConfig
    models: nn.ModuleDict
    optimizers: Mapping[str, OptimizerBundle]
    trainer: Trainer
    step: int = 0


class _LossModule(nn.Module):
    """What DDP wraps: the model components, with the trainer's ``compute_losses`` as forward."""

    def __init__(self, trainer: Trainer, models: nn.ModuleDict) -> None:
        super().__init__()
        self.models = models
        self.__dict__["_trainer"] = trainer  # not a submodule: its modules are ``models``

    def forward(self, batch: Batch) -> Any:
        trainer: Trainer = self.__dict__["_trainer"]
        return trainer.compute_losses(batch)


@dataclass
class _Accumulator:
    """Running sums of the training values since the last logging step.

    Tensors stay on the device and are read only when logging (no sync per step); they are summed
    in place, so nothing the trainer returned is kept alive from one step to the next.
    """

    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    grad_norm: torch.Tensor | None = None
    micro_batches: int = 0
    steps: int = 0
    started: float = field(default_factory=time.perf_counter)

    @staticmethod
    def add(sums: dict[str, Any], name: str, value: Any) -> None:
        previous = sums.get(name)
        if isinstance(value, torch.Tensor):
            value = value.detach()
            if isinstance(previous, torch.Tensor):
                previous.add_(value)
            else:
                sums[name] = value.float().clone() + (previous or 0.0)
        else:
            sums[name] = (previous if previous is not None else 0.0) + float(value)


def _checked_output(output: Any, trainer_type: str) -> tuple[Mapping[str, torch.Tensor], Mapping[str, Any]]:
    if not (isinstance(output, tuple) and len(output) == 2 and isinstance(output[0], Mapping)):
        raise TypeError(
            f"trainer {trainer_type!r}: compute_losses must return (terms, metrics), got {type(output).__name__}"
        )
    terms, metrics = output
    if not terms:
        raise TypeError(f"trainer {trainer_type!r}: compute_losses returned no loss terms")
    for name, term in terms.items():
        if not (isinstance(term, torch.Tensor) and term.ndim == 0 and term.requires_grad):
            raise TypeError(
                f"trainer {trainer_type!r}: loss term {name!r} must be a scalar tensor that requires grad, "
                f"got {type(term).__name__} {tuple(getattr(term, 'shape', ()))}"
            )
    return terms, metrics


class Engine:
    """One training run. Use :func:`train`."""

    def __init__(self, config: ExperimentConfig, options: TrainOptions) -> None:
        from vfp._plugins import get_host

        self.config = config
        self.options = options
        self.host = options.host or get_host()
        self.run_dir = RunDirectory(options.run_dir)
        self.dist = DistributedEnv.from_environment()
        self.is_main = self.dist.is_main
        self.max_steps = config.training.max_steps
        self.accum = config.training.grad_accum_steps
        self.clip = config.training.grad_clip_norm
        self.precision = config.precision
        self.stop = StopRequest()
        self.progress: ProgressReporter = make_progress(options.progress, self.is_main)
        self.callbacks: list[object] = []
        self.step = 0
        self.position = 0
        self.last_checkpoint: Path | None = options.resume.path if options.resume else None
        self._checkpointed_step = -1
        self._evaluated_step = -1

    # set-up ---------------------------------------------------------------------------------
    def _setup(self) -> None:
        config, resume = self.config, self.options.resume
        self.device = resolve_device(config.device, self.dist.local_rank)
        self.dist.init_process_group(config.distributed.backend, self.device)
        self._deterministic_before = torch.are_deterministic_algorithms_enabled()
        set_deterministic(config.deterministic)
        if config.threads is not None:
            self._threads_before = torch.get_num_threads()
            torch.set_num_threads(config.threads)
        seed_everything(config.seed)
        config_file = str(self.options.config_source or self.run_dir.config_file)
        self.built: BuiltTrainer = build_trainer(
            config,
            self.host,
            device=self.device,
            is_main=self.is_main,
            world_size=self.dist.world_size,
            config_file=config_file,
        )
        self.trainer = self.built.trainer
        # an nn.Module trainer's state_dict would repeat its model components: those are saved already
        self._stateful_trainer = isinstance(self.trainer, StatefulTrainer) and not isinstance(self.trainer, nn.Module)
        self.context = self.built.context
        self.models = self.built.models
        self.frozen = [self.models[name] for name, part in config.model.items() if part.freeze]
        self.bundles = build_optimizers(config, self.host.registry, self.models, self.max_steps, config_file)
        self.params = [
            p for bundle in self.bundles.values() for group in bundle.optimizer.param_groups for p in group["params"]
        ]
        self.schedule_free = [b.optimizer for b in self.bundles.values() if b.schedule_free]
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None
        ema = config.training.ema
        self.ema = WeightAverage(self.models, ema.decay, ema.start_step) if ema.enabled else None
        if resume is not None:
            try:
                self._load_state(resume.payload)
            except (KeyError, RuntimeError, ValueError) as exc:
                raise CheckpointError(
                    f"checkpoint {resume.path} does not fit this config ({type(exc).__name__}: {exc})"
                ) from exc
        self._set_train_mode()
        for optimizer in self.schedule_free:
            optimizer.train()  # type: ignore[attr-defined]
        self.ddp: torch.nn.parallel.DistributedDataParallel | None = None
        self._compute_losses: Any = self.trainer.compute_losses
        if self.dist.enabled:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                _LossModule(self.trainer, self.models),
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=config.distributed.find_unused_parameters,
            )
            self._compute_losses = self.ddp
        self._autocast = functools.partial(autocast, self.device, self.precision)
        self._output_checked = False
        self._stop_agreed = False
        data = self.built.data
        sampler = ShardedBatchSampler(
            len(data.train_dataset),  # type: ignore[arg-type]
            data.batch_size,
            seed=config.seed,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            start=self.position,
        )
        self.stream = BatchStream(
            data.train_dataset, data.collate_fn, sampler, device=self.device, num_workers=data.num_workers
        )
        restored = resume is not None and self._restore_rng(resume.payload)
        if not restored:
            if resume is not None:
                warnings.warn(
                    "the checkpoint's random states are for a different number of processes; reseeding",
                    stacklevel=2,
                )
            seed_everything(derive_seed(config.seed, TRAIN_STREAM, self.dist.rank, self.step))
        self.context.step = self.step
        self.start_step = self.step
        self.run_info = RunContext(
            run_dir=self.run_dir.path,
            start_step=self.step,
            max_steps=self.max_steps,
            is_main=self.is_main,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            config=config,
            models=self.models,
            optimizers=self.bundles,
            trainer=self.trainer,
            step=self.step,
        )
        if self.is_main:
            self._prepare_run_dir()
            for index, callback in enumerate(build_callbacks(config, self.host.registry)):
                name = f"run-callback-{index}-{type(callback).__name__}-{id(callback):x}"
                self.host.register_object(callback, name=name)
                self.callbacks.append(callback)

    def _prepare_run_dir(self) -> None:
        run_dir = self.run_dir
        run_dir.path.mkdir(parents=True, exist_ok=True)
        run_dir.checkpoints.mkdir(exist_ok=True)
        remove_stale_temporaries(run_dir.checkpoints)
        run_dir.write_config(self.config.model_dump(mode="json"), str(self.options.config_source or ""))
        run_dir.write_environment(
            collect_environment(
                self.host,
                config_source=self.options.config_source,
                argv=self.options.command,
                device=str(self.device),
                world_size=self.dist.world_size,
            )
        )

    def _load_state(self, payload: Mapping[str, Any]) -> None:
        self.step = int(payload["step"])
        for name, module in self.models.items():
            if name not in payload["models"]:
                raise KeyError(f"it has no model component {name!r}")
            try:
                module.load_state_dict(payload["models"][name])
            except RuntimeError as exc:
                raise RuntimeError(f"model component {name!r}: {exc}") from exc
        saved_optimizers = payload["optimizers"]
        for name, bundle in self.bundles.items():
            if name not in saved_optimizers:
                raise RuntimeError(f"the checkpoint has no state for optimizer {name!r}")
            bundle.optimizer.load_state_dict(saved_optimizers[name]["optimizer"])
            scheduler_state = saved_optimizers[name].get("scheduler")
            if bundle.scheduler is not None and scheduler_state is not None:
                bundle.scheduler.load_state_dict(scheduler_state)
        if self.ema is not None and payload.get("ema"):
            self.ema.load_state_dict(payload["ema"])
        if self.scaler is not None and payload.get("grad_scaler"):
            self.scaler.load_state_dict(payload["grad_scaler"])
        if self._stateful_trainer and payload.get("trainer") is not None:
            self.trainer.load_state_dict(payload["trainer"])  # type: ignore[attr-defined]
        sampler = payload["sampler"]
        data = self.built.data
        same_layout = (sampler["batch_size"], sampler["world_size"]) == (data.batch_size, self.dist.world_size)
        if same_layout:
            self.position = int(sampler["position"])
        else:
            consumed = int(sampler["position"]) * sampler["batch_size"] * sampler["world_size"]
            self.position = consumed // (data.batch_size * self.dist.world_size)
            warnings.warn(
                "resuming with a different batch size or number of processes: the data order continues "
                "approximately, not exactly",
                stacklevel=2,
            )

    def _restore_rng(self, payload: Mapping[str, Any]) -> bool:
        states = payload.get("rng") or []
        if len(states) != self.dist.world_size:
            return False
        restore_rng_state(states[self.dist.rank])
        return True

    def _set_train_mode(self) -> None:
        self.models.train()
        for module in self.frozen:
            module.eval()

    # policy weights: what evaluation sees and checkpoints hold --------------------------------
    @contextlib.contextmanager
    def _averaged_weights(self) -> Iterator[None]:
        """Schedule-free optimizers in eval mode (their averaged weights) inside the block."""
        for optimizer in self.schedule_free:
            optimizer.eval()  # type: ignore[attr-defined]
        try:
            yield
        finally:
            for optimizer in self.schedule_free:
                optimizer.train()  # type: ignore[attr-defined]

    # the loop ---------------------------------------------------------------------------------
    def _forward_backward(self, micro: int, acc: _Accumulator) -> torch.Tensor:
        """One micro-batch: forward under autocast, the terms summed in float32, backward."""
        batch = next(self.stream)
        self.position += 1
        sync = self.ddp.no_sync() if self.ddp is not None and micro < self.accum - 1 else _NO_CONTEXT
        with sync:
            with self._autocast():
                output = self._compute_losses(batch)
            if not self._output_checked:
                _checked_output(output, self.config.trainer.type)
                self._output_checked = True
            terms, metrics = output[0], output[1]
            total: torch.Tensor | None = None
            for term in terms.values():
                term = term.float()
                total = term if total is None else total + term
            assert total is not None
            loss = total / self.accum if self.accum > 1 else total
            if self.scaler is not None:
                self.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            else:
                loss.backward()  # type: ignore[no-untyped-call]
        for name, term in terms.items():
            acc.add(acc.terms, name, term)
        for name, metric in metrics.items():
            acc.add(acc.metrics, name, metric)
        acc.micro_batches += 1
        return total.detach()

    def _step(self, acc: _Accumulator) -> None:
        """One optimizer step over ``grad_accum_steps`` micro-batches."""
        step_loss = self._forward_backward(0, acc)
        for micro in range(1, self.accum):
            step_loss = step_loss + self._forward_backward(micro, acc)
        if self.scaler is not None:
            for bundle in self.bundles.values():
                self.scaler.unscale_(bundle.optimizer)
        grad_norm: torch.Tensor | None = None
        if self.clip is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        elif self.dist.enabled:
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None])
        self._check_finite(step_loss, grad_norm, acc)
        for bundle in self.bundles.values():
            if self.scaler is not None:
                self.scaler.step(bundle.optimizer)
            else:
                bundle.optimizer.step()
            if bundle.scheduler is not None:
                bundle.scheduler.step()
        if self.scaler is not None:
            self.scaler.update()
        for bundle in self.bundles.values():
            bundle.optimizer.zero_grad(set_to_none=True)
        if grad_norm is not None:
            norm = grad_norm.detach().float()
            acc.grad_norm = norm.clone() if acc.grad_norm is None else acc.grad_norm.add_(norm)
        acc.steps += 1

    def _check_finite(self, loss: torch.Tensor, grad_norm: torch.Tensor | None, acc: _Accumulator) -> None:
        """Stop before a non-finite loss or gradient reaches the weights; agree across processes.

        One device-to-host read per step (a float, cheaper than a tensor comparison on the CPU).
        """
        check_norm = grad_norm is not None and self.scaler is None
        if check_norm:
            assert grad_norm is not None
            values = torch.stack([loss, grad_norm.to(loss.dtype)]).tolist()
        else:
            values = [loss.item()]
        finite = all(math.isfinite(value) for value in values)
        if self.dist.enabled:
            local = torch.tensor([float(not finite), float(self.stop.requested)], device=self.device)
            flags = self.dist.any_true(local).tolist()
            finite = flags[0] == 0
            # every process stops after the same step: decided here, not by a signal arriving later
            self._stop_agreed = flags[1] > 0
            if self._stop_agreed and self.stop.signal is None:
                self.stop.signal = signal.SIGTERM  # another process was asked to stop
        if finite:
            return
        step = self.step + 1
        for name, total in acc.terms.items():  # sums of finite values until this step
            value = float(total)
            if not math.isfinite(value):
                raise NonFiniteLossError(f"loss term {name!r}", step, value)
        if not math.isfinite(values[0]):
            raise NonFiniteLossError("the loss", step, values[0])
        norm = values[1] if check_norm else float("nan")
        raise NonFiniteLossError("the gradient norm (a loss term was non-finite in another process?)", step, norm)

    def _log(self, acc: _Accumulator) -> dict[str, float]:
        """Means since the last logging step: loss, each term, the trainer's metrics, grad norm, lr."""
        micro = max(acc.micro_batches, 1)
        names: list[str] = []
        tensors: list[torch.Tensor] = []
        plain: dict[str, float] = {}
        if acc.terms:
            names.append("loss")
            tensors.append(torch.stack(list(acc.terms.values())).sum() / micro)
        for name, total in acc.terms.items():
            names.append(name)
            tensors.append(total / micro)
        for name, total in acc.metrics.items():
            if isinstance(total, torch.Tensor):
                names.append(name)
                tensors.append((total / micro).to(self.device))
            else:
                plain[name] = total / micro
        if acc.grad_norm is not None:
            names.append("grad_norm")
            tensors.append(acc.grad_norm / max(acc.steps, 1))
        reduced = self.dist.mean(torch.stack(tensors)) if tensors else torch.zeros(0)
        metrics = dict(zip(names, reduced.tolist(), strict=True))
        metrics.update(plain)
        for bundle_name, bundle in self.bundles.items():
            groups = bundle.optimizer.param_groups
            for index, group in enumerate(groups):
                suffix = "" if len(groups) == 1 else f".{group.get('name', index)}"
                metrics[f"lr/{bundle_name}{suffix}"] = float(group["lr"])
        elapsed = time.perf_counter() - acc.started
        metrics["steps_per_second"] = acc.steps / elapsed if elapsed > 0 else float("nan")
        return metrics

    @property
    def _stopping(self) -> bool:
        """A stop was asked for (in data parallelism: agreed by all processes at the last step)."""
        return self._stop_agreed if self.dist.enabled else self.stop.requested

    def _due(self, every: int) -> bool:
        return every > 0 and self.step % every == 0

    def _evaluate(self, steps: int | None = None) -> dict[str, float]:
        metrics: dict[str, float] = {}
        with self._averaged_weights():
            if self.is_main:
                ema = self.ema.swapped_in() if self.ema is not None else contextlib.nullcontext()
                with ema:
                    self.models.eval()
                    try:
                        metrics = run_evaluation(
                            self.trainer,
                            self.built.data,
                            device=self.device,
                            precision=self.precision,
                            seed=self.config.seed,
                            step=self.step,
                            max_batches=self.config.evaluation.max_batches,
                            steps=steps,
                        )
                    finally:
                        self._set_train_mode()
        self._evaluated_step = self.step
        if self.is_main and metrics:
            self.host.call_lifecycle("vfp_on_evaluation_end", run=self.run_info, step=self.step, metrics=metrics)
            shown = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            self.progress.message(f"evaluation at step {self.step}: {shown}")
        return metrics

    def _payload(self) -> dict[str, Any]:
        rng = capture_rng_state()
        rng_states = [rng]
        if self.dist.enabled:
            import torch.distributed as dist

            gathered: list[Any] = [None] * self.dist.world_size
            dist.all_gather_object(gathered, rng)
            rng_states = gathered
        data = self.built.data
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "config": self.config.model_dump(mode="json"),
            "models": {name: module.state_dict() for name, module in self.models.items()},
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizers": {
                name: {
                    "optimizer": bundle.optimizer.state_dict(),
                    "scheduler": bundle.scheduler.state_dict() if bundle.scheduler is not None else None,
                    "schedule_free": bundle.schedule_free,
                }
                for name, bundle in self.bundles.items()
            },
            "grad_scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "trainer": self.trainer.state_dict() if self._stateful_trainer else None,  # type: ignore[attr-defined]
            "rng": rng_states,
            "sampler": {
                "position": self.position,
                "seed": self.config.seed,
                "batch_size": data.batch_size,
                "world_size": self.dist.world_size,
                "dataset_size": len(data.train_dataset),  # type: ignore[arg-type]
            },
            "normalization": {
                key: {name: value.detach().cpu() for name, value in entry.items()}
                for key, entry in self.context.normalization_stats.items()
            },
            "data_info": data_info_record(self.context.info),
        }

    def _checkpoint(self) -> None:
        with self._averaged_weights():
            payload = self._payload()
            if self.is_main:
                path = save_checkpoint(
                    self.run_dir.checkpoints, self.step, payload, self.config.checkpointing.keep_last
                )
                self.last_checkpoint = path
        self._checkpointed_step = self.step
        if self.is_main:
            self.host.call_lifecycle("vfp_on_checkpoint_saved", run=self.run_info, step=self.step, path=path)

    def _loop(self) -> None:
        config = self.config
        log_every = config.logging.every
        eval_every = config.evaluation.every
        ckpt_every = config.checkpointing.every
        acc = _Accumulator()
        while self.step < self.max_steps:
            self._step(acc)
            self.step += 1
            self.context.step = self.step
            self.run_info.step = self.step
            if self.ema is not None:
                self.ema.update(self.step)
            if self.is_main:
                self.progress.advance(self.step)
            if self.step % log_every == 0 or self.step == self.max_steps:
                metrics = self._log(acc)
                acc = _Accumulator()
                if self.is_main:
                    self.host.call_lifecycle("vfp_on_step_end", run=self.run_info, step=self.step, metrics=metrics)
                    self.progress.log(self.step, metrics)
            if self._due(eval_every) and self.step < self.max_steps:
                self._evaluate()
            if self._due(ckpt_every) and self.step < self.max_steps:
                self._checkpoint()
            if self._stopping:
                return

    def run(self) -> TrainResult:
        """Set up, train to ``max_steps`` (or until stopped), evaluate and checkpoint at the end."""
        status: Status = "failed"
        message = ""
        started = time.perf_counter()
        steps_done = 0
        try:
            with self.stop:
                self._setup()
                if self.options.resume is not None and self.step >= self.max_steps:
                    message = (
                        f"the run is already at step {self.step} (max_steps {self.max_steps}); "
                        "raise --max-steps to extend it"
                    )
                if self.is_main:
                    self.host.call_lifecycle("vfp_on_train_start", run=self.run_info)
                    self.progress.start(self.step, self.max_steps)
                loop_started = time.perf_counter()
                try:
                    self._loop()
                except NonFiniteLossError as exc:
                    where = f"; the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint else ""
                    message = f"stopped: {exc}; the step was not applied{where}"
                    return self._finish("failed", message, started)
                steps_done = self.step - self.start_step
                seconds = time.perf_counter() - loop_started
                if self._stopping:
                    if self._checkpointed_step != self.step:
                        self._checkpoint()
                    status = "interrupted"
                    name = self.stop.signal.name if self.stop.signal is not None else "a signal"
                    message = (
                        f"stopped by {name} at step {self.step}; checkpoint {self.last_checkpoint}. "
                        f"Resume with: vfp train --resume {self.run_dir.path}"
                    )
                else:
                    if self._evaluated_step != self.step and self.step > self.start_step:
                        self._evaluate()
                    if self._checkpointed_step != self.step and self.step > self.start_step:
                        self._checkpoint()
                    status = "completed"
                    message = message or f"finished at step {self.step}; checkpoint {self.last_checkpoint}"
                result = self._finish(status, message, started)
                result.steps_per_second = steps_done / seconds if seconds > 0 and steps_done else float("nan")
                return result
        except KeyboardInterrupt:
            self._teardown("interrupted")
            raise
        except BaseException:
            self._teardown("failed")
            raise

    def _finish(self, status: Status, message: str, started: float) -> TrainResult:
        self._teardown(status)
        if self.is_main and message and status != "failed":  # failures are the caller's to report
            self.progress.message(message)
        return TrainResult(
            status=status,
            step=self.step,
            run_dir=self.run_dir.path,
            checkpoint=self.last_checkpoint,
            message=message,
            signal_exit_code=self.stop.exit_code if status == "interrupted" else None,
        )

    def _teardown(self, status: Status) -> None:
        if getattr(self, "_torn_down", False):
            return
        self._torn_down = True
        self.progress.close()
        if hasattr(self, "stream"):
            self.stream.close()
        if self.is_main and hasattr(self, "run_info"):
            self.host.call_lifecycle("vfp_on_train_end", run=self.run_info, status=status)
        for callback in self.callbacks:
            self.host.unregister_object(callback)
        self.callbacks.clear()
        if hasattr(self, "_deterministic_before"):
            set_deterministic(self._deterministic_before)
        if hasattr(self, "_threads_before"):
            torch.set_num_threads(self._threads_before)
        with contextlib.suppress(Exception):
            self.dist.barrier() if status == "completed" else None
        self.dist.shutdown()


def train(config: ExperimentConfig, options: TrainOptions) -> TrainResult:
    """Train ``config`` into ``options.run_dir`` (continuing ``options.resume`` if given).

    Returns how the run ended; raises for config errors (``vfp.config.ConfigError``), components
    that do not follow their protocol, and failures inside components.
    """
    run_dir = RunDirectory(options.run_dir)
    if options.resume is None and run_dir.has_checkpoints():
        raise RunDirectoryError(
            f"{run_dir.path} already holds a run (it has checkpoints); continue it with "
            f"`vfp train --resume {run_dir.path}` or choose another --run-dir"
        )
    return Engine(config, options).run()
