"""Setting up a trainer with its data and model components (shared by training and ``vfp eval``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from vfp.components import ComponentKind, ComponentUse
from vfp.config import ConfigError, component_use_issues, missing_component_issue
from vfp.engine.building import (
    ComponentBuildError,
    build_data_module,
    build_loss,
    build_model_component,
    missing_members,
)
from vfp.engine.runtime import resolve_device, seed_everything
from vfp.engine.state import CheckpointPayload
from vfp.engine.trainer import Trainer, TrainerContext, trainer_state
from vfp.protocols import DataInfo, DataModule, NormalizationStats

if TYPE_CHECKING:
    from vfp._plugins import PluginHost
    from vfp.config import ExperimentConfig

__all__ = ["BuiltTrainer", "build_trainer", "build_trainer_for_evaluation", "data_info_record"]


@dataclass
class BuiltTrainer:
    """A trainer with everything it was built from."""

    trainer: Trainer
    context: TrainerContext
    data: DataModule
    device: torch.device

    @property
    def models(self) -> nn.ModuleDict:
        return self.context.models


def _stats_to(stats: NormalizationStats, device: torch.device) -> NormalizationStats:
    return {key: {name: value.to(device) for name, value in entry.items()} for key, entry in stats.items()}


def build_trainer(
    config: ExperimentConfig,
    host: PluginHost,
    *,
    device: torch.device,
    normalization_stats: NormalizationStats | None = None,
    load_init_from: bool = True,
    is_main: bool = True,
    world_size: int = 1,
    config_file: str = "<config>",
) -> BuiltTrainer:
    """Build the data module (set up), then the trainer with its model components and losses.

    ``normalization_stats`` replaces the data module's (``vfp eval`` uses the checkpoint's). Model
    components configured but not built, and losses configured but not used, are config errors.
    """
    registry = host.registry
    data = build_data_module(config, registry)
    stats = normalization_stats if normalization_stats is not None else data.normalization_stats()

    def build_model(name: str, dims: dict[str, Any]) -> nn.Module:
        part = config.model.get(name)
        if part is None:
            raise ConfigError([missing_component_issue(config, "model", name, config_file)])
        if not load_init_from:
            part = part.model_copy(update={"init_from": None})
        return build_model_component(name, part, registry, dims, device=device, config_file=config_file)

    def make_loss(name: str) -> nn.Module:
        if name not in config.losses:
            raise ConfigError([missing_component_issue(config, "losses", name, config_file)])
        return build_loss(name, config, registry, device)

    context = TrainerContext(
        config=config,
        info=data.info,
        normalization_stats=_stats_to(stats, device),
        device=device,
        build_model_fn=build_model,
        build_loss_fn=make_loss,
        is_main=is_main,
        world_size=world_size,
    )
    trainer = registry.load(ComponentKind.TRAINER, config.trainer.type)(config.trainer, context)
    missing = missing_members(trainer, ("compute_losses", "sample_actions"))
    if missing:
        raise ComponentBuildError(
            f"trainer {config.trainer.type!r} returned {type(trainer).__name__}, which lacks {', '.join(missing)} "
            "(see vfp.engine.Trainer: compute_losses(batch) and sample_actions(observation, steps))"
        )
    # The same check `vfp config validate` makes from the trainer's component_use, now on what it built.
    built = ComponentUse(models=frozenset(context.models), losses=frozenset(context.losses))
    issues = component_use_issues(config, built, config_file)
    if issues:
        raise ConfigError(issues)
    return BuiltTrainer(trainer=trainer, context=context, data=data, device=device)


def build_trainer_for_evaluation(
    config: ExperimentConfig, payload: CheckpointPayload | Mapping[str, Any], host: PluginHost, *, config_file: str
) -> BuiltTrainer:
    """Rebuild a checkpoint's trainer for evaluation (weights are loaded by the caller).

    ``payload`` is the typed checkpoint (:func:`~vfp.engine.checkpoint.read_checkpoint`) or, as in
    1.0, the file's dict (:func:`~vfp.engine.checkpoint.load_checkpoint`). The data is normalized
    with the checkpoint's statistics and the trainer's own state is restored.
    """
    if not isinstance(payload, CheckpointPayload):
        payload = CheckpointPayload.from_dict(payload, config_file)
    device = resolve_device(config.device)
    seed_everything(config.seed)
    built = build_trainer(
        config,
        host,
        device=device,
        normalization_stats=payload.normalization,
        load_init_from=False,
        config_file=config_file,
    )
    stateful = trainer_state(built.trainer)
    if stateful is not None and payload.trainer is not None:
        stateful.load_state_dict(payload.trainer)
    return built


def _plain(value: Any) -> Any:
    """JSON values only (NumPy scalars and arrays become numbers and lists): checkpoints load weights-only."""

    def item(obj: Any) -> Any:
        if hasattr(obj, "tolist"):
            return obj.tolist()
        raise TypeError(f"{type(obj).__name__} is not a plain value")

    return json.loads(json.dumps(value, default=item))


def data_info_record(info: DataInfo) -> dict[str, Any]:
    """The data's description as plain values (saved with checkpoints)."""
    return {
        "history": info.history,
        "horizon": info.horizon,
        "task": info.task,
        "features": {key: {"shape": list(f.shape), "role": f.role} for key, f in info.features.items()},
        "task_options": _plain(dict(info.task_options)),
        "normalization": dict(info.normalization),
        "fps": _plain(info.fps),
        "train_episodes": info.train_episodes,
        "val_episodes": info.val_episodes,
    }
