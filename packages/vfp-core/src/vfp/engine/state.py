"""The training state and its checkpoint format: the one module that writes and reads a checkpoint's keys.

:class:`TrainState` holds, live, everything exact resume needs: the model components, the optimizers
with their schedulers, the GradScaler, the EMA, the trainer's own state, the step and the sampler
position. :meth:`TrainState.capture` turns it into a :class:`CheckpointPayload`, a typed record whose
:meth:`~CheckpointPayload.to_dict` is what a checkpoint file holds (tensors and primitive containers
only, read back with ``torch.load(weights_only=True)``); :meth:`CheckpointPayload.from_dict` reads
any supported format version back and :meth:`TrainState.restore` loads it.

Format versions (the ``format`` key):

- ``vfp-checkpoint/2`` (written since vfp-core 1.1): adds ``written_by`` (the vfp-core version) and
  the typed :class:`~vfp.protocols.DataInfo` fields in ``data_info`` (``normalization``,
  ``task_options``, ``fps``, ``train_episodes``, ``val_episodes``).
- ``vfp-checkpoint/1`` (vfp-core before 1.1, plugin contract 1.0): still read; the missing values take their defaults.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import torch
from torch import nn

from vfp.engine.ema import WeightAverage
from vfp.engine.trainer import StatefulTrainer
from vfp.protocols import NormalizationStats, OptimizerBundle

__all__ = [
    "CHECKPOINT_FORMAT",
    "READABLE_FORMATS",
    "CheckpointError",
    "CheckpointPayload",
    "DataOrder",
    "OptimizerState",
    "SamplerState",
    "StateDicts",
    "TrainState",
]

CHECKPOINT_FORMAT: Final = "vfp-checkpoint/2"
"""The format this vfp-core writes."""
LEGACY_FORMAT_1: Final = "vfp-checkpoint/1"
READABLE_FORMATS: Final = (LEGACY_FORMAT_1, CHECKPOINT_FORMAT)
"""Every format this vfp-core reads, oldest first."""

StateDicts = dict[str, dict[str, torch.Tensor]]
"""One state dict per model component, by component name."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be found, read or used."""


@dataclass(frozen=True)
class OptimizerState:
    """The saved state of one :class:`~vfp.protocols.OptimizerBundle`."""

    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None = None
    schedule_free: bool = False


@dataclass(frozen=True)
class DataOrder:
    """What fixes the training data's order besides the position (see :mod:`vfp.engine.sampler`)."""

    seed: int
    batch_size: int
    """Per process."""
    world_size: int
    dataset_size: int


@dataclass(frozen=True)
class SamplerState(DataOrder):
    """Where the training data stream stood: ``position`` global batches consumed."""

    position: int = 0

    def position_for(self, order: DataOrder) -> int:
        """The position to continue from with another batch size or number of processes (approximate)."""
        if (self.batch_size, self.world_size) == (order.batch_size, order.world_size):
            return self.position
        consumed = self.position * self.batch_size * self.world_size
        return consumed // (order.batch_size * order.world_size)


def _tensors_to_cpu(stats: Mapping[str, Mapping[str, torch.Tensor]]) -> NormalizationStats:
    return {key: {name: value.detach().cpu() for name, value in entry.items()} for key, entry in stats.items()}


@dataclass(frozen=True)
class CheckpointPayload:
    """The content of one checkpoint, typed. Build it with :meth:`TrainState.capture` or :meth:`from_dict`."""

    step: int
    """Optimizer steps completed."""
    config: dict[str, Any]
    """The resolved experiment config (JSON values), validated again when loaded."""
    models: StateDicts
    """The trained weights of every model component."""
    optimizers: dict[str, OptimizerState] = field(default_factory=dict)
    ema: StateDicts | None = None
    """The EMA weights (the policy's weights) when the run kept an EMA."""
    grad_scaler: dict[str, Any] | None = None
    trainer: dict[str, Any] | None = None
    """A :class:`~vfp.engine.StatefulTrainer`'s own state."""
    rng: list[dict[str, Any]] = field(default_factory=list)
    """The random generators' states, one per process (rank order)."""
    sampler: SamplerState | None = None
    normalization: NormalizationStats = field(default_factory=dict)
    """The statistics the data was normalized with (CPU tensors)."""
    data_info: dict[str, Any] = field(default_factory=dict)
    """The data's description as plain values (:func:`vfp.engine.session.data_info_record`)."""
    written_by: dict[str, str] = field(default_factory=dict)
    """Versions of what wrote the checkpoint (``{"vfp-core": "1.1.0"}``; empty before format 2)."""
    format: str = CHECKPOINT_FORMAT
    """The format of the file this was read from (what :meth:`to_dict` writes is always the newest)."""

    @property
    def uses_ema(self) -> bool:
        """Whether the policy's weights are the EMA (the run kept one)."""
        return bool(self.ema)

    @property
    def policy_weights(self) -> StateDicts:
        """The weights a policy uses: the EMA weights when the run kept an EMA, else the trained ones."""
        return self.ema if self.ema else self.models

    @staticmethod
    def policy_weights_of(raw: Mapping[str, Any]) -> StateDicts:
        """:attr:`policy_weights` of a file's dict as :func:`~vfp.engine.checkpoint.load_checkpoint` returns it."""
        ema = raw.get("ema")
        weights: StateDicts = ema if ema else raw["models"]
        return weights

    def rng_state(self, rank: int, world_size: int) -> dict[str, Any] | None:
        """This process's generator states, or None when the checkpoint has another number of processes."""
        if len(self.rng) != world_size:
            return None
        return self.rng[rank]

    # the file's layout: these two methods are the only place that knows the keys ---------------
    def to_dict(self) -> dict[str, Any]:
        """What the checkpoint file holds (format :data:`CHECKPOINT_FORMAT`)."""
        sampler = self.sampler
        return {
            "format": CHECKPOINT_FORMAT,
            "written_by": dict(self.written_by),
            "step": self.step,
            "config": self.config,
            "models": self.models,
            "ema": self.ema,
            "optimizers": {
                name: {"optimizer": state.optimizer, "scheduler": state.scheduler, "schedule_free": state.schedule_free}
                for name, state in self.optimizers.items()
            },
            "grad_scaler": self.grad_scaler,
            "trainer": self.trainer,
            "rng": list(self.rng),
            "sampler": None
            if sampler is None
            else {
                "position": sampler.position,
                "seed": sampler.seed,
                "batch_size": sampler.batch_size,
                "world_size": sampler.world_size,
                "dataset_size": sampler.dataset_size,
            },
            "normalization": _tensors_to_cpu(self.normalization),
            "data_info": self.data_info,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "the checkpoint") -> CheckpointPayload:
        """Read a checkpoint file's content, of any format in :data:`READABLE_FORMATS`.

        Raises :class:`CheckpointError` naming ``source`` and the key for content that does not fit.
        """
        found = raw.get("format")
        if found not in READABLE_FORMATS:
            raise CheckpointError(
                f"{source} is not a vfp checkpoint this vfp-core reads (format {found!r}; "
                f"readable: {', '.join(READABLE_FORMATS)})"
            )
        try:
            return cls._parse(raw, str(found))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"{source} ({found}) is damaged: {type(exc).__name__}: {exc}") from exc

    @classmethod
    def _parse(cls, raw: Mapping[str, Any], found: str) -> CheckpointPayload:
        for key in ("step", "config", "models"):
            if key not in raw:
                raise KeyError(f"it has no {key!r} entry")
        sampler = raw.get("sampler")
        optimizers = raw.get("optimizers") or {}
        return cls(
            step=int(raw["step"]),
            config=dict(raw["config"]),
            models=dict(raw["models"]),
            optimizers={
                name: OptimizerState(
                    optimizer=saved["optimizer"],
                    scheduler=saved.get("scheduler"),
                    schedule_free=bool(saved.get("schedule_free", False)),
                )
                for name, saved in optimizers.items()
            },
            ema=raw.get("ema") or None,
            grad_scaler=raw.get("grad_scaler") or None,
            trainer=raw.get("trainer"),
            rng=list(raw.get("rng") or []),
            sampler=None
            if sampler is None
            else SamplerState(
                position=int(sampler["position"]),
                seed=int(sampler["seed"]),
                batch_size=int(sampler["batch_size"]),
                world_size=int(sampler["world_size"]),
                dataset_size=int(sampler["dataset_size"]),
            ),
            normalization=dict(raw.get("normalization") or {}),
            data_info=dict(raw.get("data_info") or {}),
            written_by=dict(raw.get("written_by") or {}),  # absent in format 1
            format=found,
        )


def _vfp_core_version() -> str:
    from vfp import __version__

    return __version__


@dataclass
class TrainState:
    """What a checkpoint saves, live; the loop advances ``step`` and ``position``."""

    models: nn.ModuleDict
    optimizers: dict[str, OptimizerBundle]
    data_order: DataOrder
    scaler: torch.amp.GradScaler | None = None
    ema: WeightAverage | None = None
    trainer: StatefulTrainer | None = None
    """The trainer, when it has state outside its model components (:func:`~vfp.engine.trainer.trainer_state`)."""
    frozen: Sequence[str] = ()
    """Model components that stay in eval mode while training (``freeze: true``)."""
    step: int = 0
    position: int = 0
    """Global batches of training data consumed (micro-batches included)."""

    @property
    def schedule_free(self) -> list[torch.optim.Optimizer]:
        return [bundle.optimizer for bundle in self.optimizers.values() if bundle.schedule_free]

    def train_mode(self) -> None:
        """Models in train mode, frozen components in eval mode."""
        self.models.train()
        for name in self.frozen:
            self.models[name].eval()

    @contextlib.contextmanager
    def averaged_weights(self) -> Iterator[None]:
        """Schedule-free optimizers in eval mode (the models hold their averaged weights) inside the block."""
        for optimizer in self.schedule_free:
            optimizer.eval()  # type: ignore[attr-defined]
        try:
            yield
        finally:
            for optimizer in self.schedule_free:
                optimizer.train()  # type: ignore[attr-defined]

    def capture(
        self,
        *,
        config: dict[str, Any],
        rng: list[dict[str, Any]],
        normalization: NormalizationStats,
        data_info: dict[str, Any],
    ) -> CheckpointPayload:
        """The checkpoint of the current state (call inside :meth:`averaged_weights`)."""
        return CheckpointPayload(
            step=self.step,
            config=config,
            models={name: module.state_dict() for name, module in self.models.items()},
            ema=self.ema.state_dict() if self.ema is not None else None,
            optimizers={
                name: OptimizerState(
                    optimizer=bundle.optimizer.state_dict(),
                    scheduler=bundle.scheduler.state_dict() if bundle.scheduler is not None else None,
                    schedule_free=bundle.schedule_free,
                )
                for name, bundle in self.optimizers.items()
            },
            grad_scaler=self.scaler.state_dict() if self.scaler is not None else None,
            trainer=self.trainer.state_dict() if self.trainer is not None else None,
            rng=rng,
            sampler=SamplerState(
                seed=self.data_order.seed,
                batch_size=self.data_order.batch_size,
                world_size=self.data_order.world_size,
                dataset_size=self.data_order.dataset_size,
                position=self.position,
            ),
            normalization=normalization,
            data_info=data_info,
            written_by={"vfp-core": _vfp_core_version()},
        )

    def restore(self, payload: CheckpointPayload) -> None:
        """Load a checkpoint into the live state.

        Raises ``KeyError``/``RuntimeError``/``ValueError`` saying what does not fit (the caller names
        the file).
        """
        self.step = payload.step
        for name, module in self.models.items():
            if name not in payload.models:
                raise KeyError(f"it has no model component {name!r}")
            try:
                module.load_state_dict(payload.models[name])
            except RuntimeError as exc:
                raise RuntimeError(f"model component {name!r}: {exc}") from exc
        for name, bundle in self.optimizers.items():
            saved = payload.optimizers.get(name)
            if saved is None:
                raise RuntimeError(f"the checkpoint has no state for optimizer {name!r}")
            bundle.optimizer.load_state_dict(saved.optimizer)
            if bundle.scheduler is not None and saved.scheduler is not None:
                bundle.scheduler.load_state_dict(saved.scheduler)
        if self.ema is not None and payload.ema:
            self.ema.load_state_dict(payload.ema)
        if self.scaler is not None and payload.grad_scaler:
            self.scaler.load_state_dict(payload.grad_scaler)
        if self.trainer is not None and payload.trainer is not None:
            self.trainer.load_state_dict(payload.trainer)
        if payload.sampler is None:
            raise KeyError("it has no sampler position")
        sampler, order = payload.sampler, self.data_order
        self.position = sampler.position_for(order)
        if (sampler.batch_size, sampler.world_size) != (order.batch_size, order.world_size):
            warnings.warn(
                "resuming with a different batch size or number of processes: the data order continues "
                "approximately, not exactly",
                stacklevel=3,
            )
