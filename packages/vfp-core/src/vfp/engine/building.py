"""Building a run's components from the registry: data, model components, losses, optimizers, callbacks."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from vfp._plugins import ComponentRegistry
from vfp.components import ComponentKind
from vfp.config import ConfigError, ConfigIssue, ModelComponentConfig
from vfp.protocols import DataModule, OptimizerBundle

if TYPE_CHECKING:
    from vfp.config import ExperimentConfig

__all__ = [
    "ComponentBuildError",
    "apply_init",
    "build_callbacks",
    "build_data_module",
    "build_loss",
    "build_model_component",
    "build_optimizers",
    "param_groups_by_optimizer",
]


class ComponentBuildError(RuntimeError):
    """A component's implementation did not return what the engine expects of its kind."""


def config_issue(config_file: str, path: str, message: str) -> ConfigError:
    return ConfigError([ConfigIssue(config_file, None, path, message)])


DATA_MODULE_MEMBERS = (
    "batch_size",
    "num_workers",
    "setup",
    "info",
    "train_dataset",
    "val_dataset",
    "collate_fn",
    "normalization_stats",
)


def missing_members(obj: object, names: Sequence[str]) -> list[str]:
    """Members of a protocol that ``obj`` lacks, found without evaluating properties."""
    missing = []
    for name in names:
        try:
            inspect.getattr_static(obj, name)
        except AttributeError:
            missing.append(name)
    return missing


def build_data_module(config: ExperimentConfig, registry: ComponentRegistry) -> DataModule:
    """Build and set up the data module of the ``data`` section."""
    factory = registry.load(ComponentKind.DATALOADER, config.data.type)
    module = factory(config.data)
    missing = missing_members(module, DATA_MODULE_MEMBERS)
    if missing:
        raise ComponentBuildError(
            f"dataloader {config.data.type!r} returned {type(module).__name__}, which is not a "
            f"vfp.protocols.DataModule: it lacks {', '.join(missing)}"
        )
    module.setup()
    typed: DataModule = module
    return typed


_INIT_SCHEMES: dict[str, Callable[[torch.Tensor], Any]] = {
    "xavier_uniform": nn.init.xavier_uniform_,
    "xavier_normal": nn.init.xavier_normal_,
    "kaiming_normal": lambda t: nn.init.kaiming_normal_(t, nonlinearity="relu"),
    "orthogonal": nn.init.orthogonal_,
}


@torch.no_grad()
def apply_init(module: nn.Module, scheme: str) -> None:
    """Initialise weights (tensors of 2 or more dims) with ``scheme`` and zero the biases.

    ``default`` keeps the module's own initialisation; ``zeros`` zeroes every parameter. Other
    one-dimensional parameters (normalization scales) keep their values.
    """
    if scheme == "default":
        return
    for name, param in module.named_parameters():
        if scheme == "zeros":
            param.zero_()
        elif param.ndim >= 2:
            _INIT_SCHEMES[scheme](param)
        elif name == "bias" or name.endswith(".bias"):
            param.zero_()


def parse_init_from(reference: str) -> tuple[Path, str | None]:
    """``PATH`` or ``PATH#COMPONENT`` (a checkpoint file or a run directory, and a component name)."""
    path, _, component = reference.partition("#")
    return Path(path).expanduser(), component or None


def build_model_component(
    name: str,
    part: ModelComponentConfig,
    registry: ComponentRegistry,
    dims: Mapping[str, Any],
    *,
    device: torch.device,
    config_file: str = "<config>",
) -> nn.Module:
    """Build ``model.<name>``: call its architecture with ``dims``, then init, init_from and freeze."""
    factory = registry.load(ComponentKind.MODEL, part.arch.type)
    try:
        module = factory(part.arch, **dims)
    except TypeError as exc:
        raise ComponentBuildError(
            f"model component {name!r} ({part.arch.type}) could not be built with dimensions {dict(dims)}: {exc}"
        ) from exc
    if not isinstance(module, nn.Module):
        raise ComponentBuildError(
            f"model {part.arch.type!r} (component {name!r}) returned {type(module).__name__}, not a torch.nn.Module"
        )
    apply_init(module, part.init)
    if part.init_from is not None:
        from vfp.engine.checkpoint import load_component_weights

        path, source = parse_init_from(part.init_from)
        try:
            state = load_component_weights(path, source or name)
            module.load_state_dict(state)
        except (OSError, KeyError, IndexError, RuntimeError, ValueError) as exc:
            raise config_issue(
                config_file, f"model.{name}.init_from", f"cannot load weights from {part.init_from!r}: {exc}"
            ) from exc
    if part.freeze:
        module.requires_grad_(False)
    return module.to(device)


def build_loss(name: str, config: ExperimentConfig, registry: ComponentRegistry, device: torch.device) -> nn.Module:
    """Build ``losses.<name>`` on ``device``."""
    section = config.losses[name]
    module = registry.load(ComponentKind.LOSS, section.type)(section)
    if not isinstance(module, nn.Module):
        raise ComponentBuildError(
            f"loss {section.type!r} (losses.{name}) returned {type(module).__name__}, not a torch.nn.Module"
        )
    return module.to(device)


def param_groups_by_optimizer(config: ExperimentConfig, models: nn.ModuleDict) -> dict[str, list[dict[str, Any]]]:
    """Trainable parameters of each model component, grouped under the optimizer it names.

    Each group is ``{"params": [...], "name": component}``; frozen components and components
    without trainable parameters contribute no group.
    """
    groups: dict[str, list[dict[str, Any]]] = {name: [] for name in config.optimizers}
    for name, module in models.items():
        part = config.model[name]
        if part.freeze:
            continue
        params = [p for p in module.parameters() if p.requires_grad]
        if params:
            groups[part.optimizer].append({"params": params, "name": name})
    return groups


def build_optimizers(
    config: ExperimentConfig,
    registry: ComponentRegistry,
    models: nn.ModuleDict,
    total_steps: int,
    config_file: str = "<config>",
) -> dict[str, OptimizerBundle]:
    """One :class:`OptimizerBundle` per entry of ``optimizers`` that has parameters to train."""
    used = {part.optimizer for part in config.model.values()}
    unused = [name for name in config.optimizers if name not in used]
    if unused:
        raise config_issue(
            config_file,
            f"optimizers.{unused[0]}",
            f"no model component uses this optimizer (set model.<component>.optimizer: {unused[0]})",
        )
    bundles: dict[str, OptimizerBundle] = {}
    for name, groups in param_groups_by_optimizer(config, models).items():
        if not groups:
            continue
        section = config.optimizers[name]
        bundle = registry.load(ComponentKind.OPTIMIZER, section.type)(section, groups, total_steps)
        if not isinstance(bundle, OptimizerBundle):
            raise ComponentBuildError(
                f"optimizer {section.type!r} (optimizers.{name}) returned {type(bundle).__name__}, "
                "not a vfp.protocols.OptimizerBundle"
            )
        bundles[name] = bundle
    return bundles


def build_callbacks(config: ExperimentConfig, registry: ComponentRegistry) -> list[object]:
    """Instantiate the callback components of ``logging.callbacks`` (loggers), in order.

    A constructor that raises is reported as a :class:`ComponentBuildError` naming the callback, its
    plugin and its place in ``logging.callbacks``.
    """
    callbacks = []
    for index, section in enumerate(config.logging.callbacks):
        spec = registry.get(ComponentKind.CALLBACK, section.type)
        target = registry.load(ComponentKind.CALLBACK, section.type)
        try:
            callbacks.append(target(section))
        except Exception as exc:
            raise ComponentBuildError(
                f"logging.callbacks.{index}: callback {section.type!r} from {spec.origin} raised while it was "
                f"built: {type(exc).__name__}: {exc}"
            ) from exc
    return callbacks
