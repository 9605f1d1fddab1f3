"""Setting up a trainer with its data and model components (shared by training and ``vfp eval``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from vfp.components import ComponentKind
from vfp.engine.building import (
    ComponentBuildError,
    build_data_module,
    build_loss,
    build_model_component,
    config_issue,
    missing_members,
)
from vfp.engine.runtime import resolve_device, seed_everything
from vfp.engine.trainer import Trainer, TrainerContext
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
            defined = ", ".join(config.model) or "none"
            raise config_issue(
                config_file,
                f"model.{name}",
                f"trainer {config.trainer.type!r} needs a model component named {name!r}; "
                f"the config defines: {defined}",
            )
        if not load_init_from:
            part = part.model_copy(update={"init_from": None})
        return build_model_component(name, part, registry, dims, device=device, config_file=config_file)

    def make_loss(name: str) -> nn.Module:
        if name not in config.losses:
            defined = ", ".join(config.losses) or "none"
            raise config_issue(
                config_file,
                f"losses.{name}",
                f"trainer {config.trainer.type!r} needs a loss named {name!r}; the config defines: {defined}",
            )
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
    unbuilt = [name for name in config.model if name not in context.models]
    if unbuilt:
        raise config_issue(
            config_file,
            f"model.{unbuilt[0]}",
            f"trainer {config.trainer.type!r} does not use this model component (it built: "
            f"{', '.join(context.models) or 'none'}); remove it or check its name",
        )
    unused = [name for name in config.losses if name not in context.losses]
    if unused:
        raise config_issue(
            config_file,
            f"losses.{unused[0]}",
            f"trainer {config.trainer.type!r} does not use this loss (it used: {', '.join(context.losses) or 'none'}); "
            "remove it or check its name",
        )
    return BuiltTrainer(trainer=trainer, context=context, data=data, device=device)


def build_trainer_for_evaluation(
    config: ExperimentConfig, payload: Mapping[str, Any], host: PluginHost, *, config_file: str
) -> BuiltTrainer:
    """Rebuild a checkpoint's trainer for evaluation (weights are loaded by the caller)."""
    device = resolve_device(config.device)
    seed_everything(config.seed)
    built = build_trainer(
        config,
        host,
        device=device,
        normalization_stats=payload.get("normalization"),
        load_init_from=False,
        config_file=config_file,
    )
    trainer_state = payload.get("trainer")
    if trainer_state is not None and hasattr(built.trainer, "load_state_dict"):
        built.trainer.load_state_dict(trainer_state)
    return built


def data_info_record(info: DataInfo) -> dict[str, Any]:
    """The data's description as plain values (saved with checkpoints)."""
    return {
        "history": info.history,
        "horizon": info.horizon,
        "task": info.task,
        "features": {key: {"shape": list(f.shape), "role": f.role} for key, f in info.features.items()},
    }
