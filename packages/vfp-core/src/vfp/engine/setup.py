"""Setting up a training run: the builder that turns a config into everything the loop works with.

:func:`build_run` does, in this order (the order fixes the random streams, so exact resume and
reproducible initialisation depend on it): device and process group, seeding, the trainer with its
data and model components, the :class:`~vfp.engine.state.TrainState` (optimizers, GradScaler, EMA),
the checkpoint to resume, train mode, DDP, the data stream and the training random stream. On rank 0
the loop then calls :func:`prepare_directory` and :func:`register_callbacks`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from vfp.engine.building import build_callbacks, build_optimizers
from vfp.engine.checkpoint import describe_write_error, remove_stale_temporaries, restore_rng_state
from vfp.engine.distributed import DistributedEnv
from vfp.engine.ema import WeightAverage
from vfp.engine.options import ResumePoint, RunContext, RunDirectoryError, TrainOptions
from vfp.engine.run import RunDirectory, collect_environment
from vfp.engine.runtime import derive_seed, resolve_device, seed_everything, set_deterministic
from vfp.engine.sampler import BatchStream, ShardedBatchSampler
from vfp.engine.session import BuiltTrainer, build_trainer
from vfp.engine.state import CheckpointError, DataOrder, TrainState
from vfp.engine.trainer import Trainer, trainer_state
from vfp.protocols import Batch, DataModule
from vfp.run_layout import LATEST_POINTER

if TYPE_CHECKING:
    from vfp._plugins import PluginHost
    from vfp.config import ExperimentConfig

__all__ = ["ProcessSettings", "TrainingRun", "build_run", "prepare_directory", "register_callbacks"]

TRAIN_STREAM = 1
"""Purpose index of the training random stream (``derive_seed(seed, TRAIN_STREAM, rank, step)``)."""


class ProcessSettings:
    """Process-wide torch settings a run changes (deterministic algorithms, threads), restored after it."""

    def __init__(self, deterministic: bool, threads: int | None) -> None:
        self._deterministic_before = torch.are_deterministic_algorithms_enabled()
        set_deterministic(deterministic)
        self._threads_before: int | None = None
        if threads is not None:
            self._threads_before = torch.get_num_threads()
            torch.set_num_threads(threads)

    def restore(self) -> None:
        set_deterministic(self._deterministic_before)
        if self._threads_before is not None:
            torch.set_num_threads(self._threads_before)


@dataclass
class TrainingRun:
    """Everything the loop works with, built by :func:`build_run`."""

    config: ExperimentConfig
    directory: RunDirectory
    device: torch.device
    built: BuiltTrainer
    state: TrainState
    stream: BatchStream
    compute_losses: Callable[[Batch], Any]
    """The trainer's ``compute_losses``, or the DDP module that calls it."""
    ddp: torch.nn.parallel.DistributedDataParallel | None
    run: RunContext
    """What lifecycle hooks receive."""
    callbacks: list[object] = field(default_factory=list)
    """Callback components registered on the host for this run (rank 0)."""

    @property
    def trainer(self) -> Trainer:
        return self.built.trainer


class _LossModule(nn.Module):
    """What DDP wraps: the model components, with the trainer's ``compute_losses`` as forward."""

    def __init__(self, trainer: Trainer, models: nn.ModuleDict) -> None:
        super().__init__()
        self.models = models
        self.__dict__["_trainer"] = trainer  # not a submodule: its modules are ``models``

    def forward(self, batch: Batch) -> Any:
        trainer: Trainer = self.__dict__["_trainer"]
        return trainer.compute_losses(batch)


def build_run(config: ExperimentConfig, options: TrainOptions, host: PluginHost, dist: DistributedEnv) -> TrainingRun:
    """Build a run (see the module's docstring for the order); raises ``CheckpointError`` for a resume
    point that does not fit the config."""
    directory = RunDirectory(options.run_dir)
    device = resolve_device(config.device, dist.local_rank)
    dist.init_process_group(config.distributed.backend, device)
    seed_everything(config.seed)
    config_file = str(options.config_source or directory.config_file)
    built = build_trainer(
        config, host, device=device, is_main=dist.is_main, world_size=dist.world_size, config_file=config_file
    )
    state = _train_state(config, host, built, dist, device, config_file)
    if options.resume is not None:
        _restore(state, options.resume)
    state.train_mode()
    for optimizer in state.schedule_free:
        optimizer.train()  # type: ignore[attr-defined]
    compute_losses, ddp = _data_parallel(config, built, dist, device)
    collate, prepare = _transfer_path(built.data)
    stream = BatchStream(
        built.data.train_dataset,
        collate,
        ShardedBatchSampler(
            state.data_order.dataset_size,
            state.data_order.batch_size,
            seed=config.seed,
            rank=dist.rank,
            world_size=dist.world_size,
            start=state.position,
        ),
        device=device,
        num_workers=built.data.num_workers,
        prepare=prepare,
    )
    try:
        _seed_training_stream(config, dist, state, options.resume)
    except BaseException:
        stream.close()
        raise
    built.context.step = state.step
    run = _run_context(config, options, built, state, dist)
    return TrainingRun(config, directory, device, built, state, stream, compute_losses, ddp, run)


def _transfer_path(data: DataModule) -> tuple[Callable[[Any], Batch], Callable[[Batch], Batch] | None]:
    """The collate function for training batches, and what to run on them once they are on the device.

    A data module that offers ``transfer_collate_fn`` and ``prepare_batch`` keeps images uint8 until
    the device (4x fewer bytes to copy), where ``prepare_batch`` converts and augments them; any
    other data module's ``collate_fn`` gives finished batches.
    """
    transfer = getattr(data, "transfer_collate_fn", None)
    prepare = getattr(data, "prepare_batch", None)
    if transfer is not None and callable(prepare):
        return transfer, prepare
    return data.collate_fn, None


def _train_state(
    config: ExperimentConfig,
    host: PluginHost,
    built: BuiltTrainer,
    dist: DistributedEnv,
    device: torch.device,
    config_file: str,
) -> TrainState:
    models = built.models
    ema = config.training.ema
    return TrainState(
        models=models,
        optimizers=build_optimizers(config, host.registry, models, config.training.max_steps, config_file),
        data_order=DataOrder(
            seed=config.seed,
            batch_size=built.data.batch_size,
            world_size=dist.world_size,
            dataset_size=len(built.data.train_dataset),  # type: ignore[arg-type]
        ),
        scaler=torch.amp.GradScaler(device.type) if config.precision == "fp16" else None,
        ema=WeightAverage(models, ema.decay, ema.start_step) if ema.enabled else None,
        trainer=trainer_state(built.trainer),
        frozen=[name for name, part in config.model.items() if part.freeze],
    )


def _restore(state: TrainState, resume: ResumePoint) -> None:
    try:
        state.restore(resume.checkpoint)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {resume.path} does not fit this config ({type(exc).__name__}: {exc})"
        ) from exc


def _data_parallel(
    config: ExperimentConfig, built: BuiltTrainer, dist: DistributedEnv, device: torch.device
) -> tuple[Callable[[Batch], Any], torch.nn.parallel.DistributedDataParallel | None]:
    """DDP around the trainer's losses with more than one process; the trainer itself otherwise."""
    if not dist.enabled:
        return built.trainer.compute_losses, None
    ddp = torch.nn.parallel.DistributedDataParallel(
        _LossModule(built.trainer, built.models),
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=config.distributed.find_unused_parameters,
    )
    return ddp, ddp


def _seed_training_stream(
    config: ExperimentConfig, dist: DistributedEnv, state: TrainState, resume: ResumePoint | None
) -> None:
    """The checkpoint's generator states on exact resume; else a stream derived from (seed, rank, step)."""
    saved = resume.checkpoint.rng_state(dist.rank, dist.world_size) if resume is not None else None
    if saved is not None:
        restore_rng_state(saved)
        return
    if resume is not None:
        warnings.warn("the checkpoint's random states are for a different number of processes; reseeding", stacklevel=3)
    seed_everything(derive_seed(config.seed, TRAIN_STREAM, dist.rank, state.step))


def _run_context(
    config: ExperimentConfig, options: TrainOptions, built: BuiltTrainer, state: TrainState, dist: DistributedEnv
) -> RunContext:
    return RunContext(
        run_dir=options.run_dir,
        name=options.run_dir.name,
        experiment=config.name or (options.config_source.stem if options.config_source else options.run_dir.name),
        config_path=options.config_source,
        trainer_type=config.trainer.type,
        start_step=state.step,
        max_steps=config.training.max_steps,
        is_main=dist.is_main,
        rank=dist.rank,
        world_size=dist.world_size,
        config=config,
        models=built.models,
        optimizers=state.optimizers,
        trainer=built.trainer,
        state=state,
    )


def prepare_directory(training: TrainingRun, options: TrainOptions, host: PluginHost, dist: DistributedEnv) -> None:
    """Create the run directory (rank 0): resolved config, environment record, no stale temporaries.

    Raises :class:`RunDirectoryError` (one line, no traceback) when the directory cannot be written
    (read-only, full, permission denied) or its ``checkpoints/latest`` pointer is not a file.
    """
    directory = training.directory
    pointer = directory.checkpoints / LATEST_POINTER
    if pointer.exists() and not pointer.is_file():
        raise RunDirectoryError(
            f"{pointer} is not a file: it must be the `latest` pointer (a file naming the newest step_*.pt); "
            "remove or rename it"
        )
    target = directory.path
    try:
        directory.path.mkdir(parents=True, exist_ok=True)
        target = directory.checkpoints
        directory.checkpoints.mkdir(exist_ok=True)
        remove_stale_temporaries(directory.checkpoints)
        target = directory.config_file
        directory.write_config(training.config.model_dump(mode="json"), str(options.config_source or ""))
        target = directory.env_file
        directory.write_environment(
            collect_environment(
                host,
                config_source=options.config_source,
                argv=options.command,
                device=str(training.device),
                world_size=dist.world_size,
            )
        )
    except OSError as exc:
        raise RunDirectoryError(f"run directory {directory.path}: {describe_write_error(exc, target)}") from None


def register_callbacks(training: TrainingRun, host: PluginHost) -> None:
    """Build ``logging.callbacks`` and register each on the host for this run (``training.callbacks``)."""
    for index, callback in enumerate(build_callbacks(training.config, host.registry)):
        host.register_object(callback, name=f"run-callback-{index}-{type(callback).__name__}-{id(callback):x}")
        training.callbacks.append(callback)
