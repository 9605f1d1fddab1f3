"""Validation of a composed config, with pydantic's errors told in the user's terms."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from vfp._plugins import ComponentRegistry, PluginHost, get_host
from vfp.components import ComponentConfig, ComponentKind, ComponentUse, TrainerConfig
from vfp.config._catalog import ConfigCatalog
from vfp.config._checks import (
    coercion_problems,
    component_use_issues,
    cross_section_problems,
    deletion_leftovers,
    duplicate_callback_problems,
    init_from_problems,
)
from vfp.config._compose import apply_overrides, compose_file, resolve_config_argument
from vfp.config._errors import ConfigError, ConfigIssue
from vfp.config._schema import ExperimentConfig, experiment_model
from vfp.config._yaml import KeyPath, LocatedData

LEGACY_PLUGINS_KEY = "plugins"


@dataclass
class LoadedConfig:
    """A validated experiment, with the file it came from and the resolved plain data."""

    config: ExperimentConfig
    source: Path
    located: LocatedData

    def resolved(self) -> dict[str, Any]:
        """The fully resolved config (defaults filled in) as plain YAML-able data."""
        return self.config.model_dump(mode="json")


def load_experiment(ref: str | Path, overrides: Iterable[str] = (), host: PluginHost | None = None) -> LoadedConfig:
    """Read, compose, override and validate an experiment given as a path or a packaged name."""
    host = host or get_host()
    catalog = ConfigCatalog(host)
    source = resolve_config_argument(ref, catalog)
    located = apply_overrides(compose_file(source, catalog), overrides)
    config = validate(located, host.registry, str(source), check_files=True)
    return LoadedConfig(config, source, located)


def validate(
    located: LocatedData, registry: ComponentRegistry, file: str, *, check_files: bool = False
) -> ExperimentConfig:
    """Validate composed data against the installed components; every problem is reported at once.

    Besides the schema: the checks across sections (optimizers), each component's ``cross_check``,
    and, for a trainer whose config declares :meth:`vfp.TrainerConfig.component_use`, which model
    components and losses it builds: what ``vfp train`` would refuse, ``validate`` refuses. No
    boolean stands for a number and every number is finite. ``check_files`` (a config read from
    files, not one read back from a checkpoint): every ``init_from`` names a checkpoint.
    """
    data = located.data
    issues: list[ConfigIssue] = []

    def issue(path: KeyPath, message: str) -> ConfigIssue:
        origin = located.origin_of(path)
        return ConfigIssue(origin.file if origin else file, origin.line if origin else None, _dotted(path), message)

    if isinstance(data, dict) and LEGACY_PLUGINS_KEY in data:
        issues.append(
            issue(
                (LEGACY_PLUGINS_KEY,),
                "the 'plugins:' list of module paths is no longer used: installed plugins are discovered "
                "automatically (see `vfp plugins list`). Remove this key; nothing in it was imported.",
            )
        )
        data = {k: v for k, v in data.items() if k != LEGACY_PLUGINS_KEY}
    leftovers = deletion_leftovers(data)
    if leftovers:
        issues.extend(issue(path, message) for path, message in leftovers)
        data = _without(data, [path for path, _ in leftovers])
    model = experiment_model(registry)
    config: ExperimentConfig | None = None
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            path, message = _describe(error, data, model, registry)
            issues.append(issue(path, message))
    except Exception as exc:  # a plugin's validator raised something else: name it, no traceback
        from vfp._plugins import raised_in_validation

        issues.append(issue(*raised_in_validation(exc, registry, data)))
    issues.extend(issue(path, message) for path, message in cross_section_problems(data))
    if config is not None:
        issues.extend(issue(path, message) for path, message in coercion_problems(data, config))
        issues.extend(issue(path, message) for path, message in duplicate_callback_problems(config))
        if check_files:
            issues.extend(issue(path, message) for path, message in init_from_problems(config))
        config._origins = located.origins
        for path, section in _component_sections(config):
            try:
                found = list(section.cross_check(config))
            except Exception as exc:  # a plugin's check must not take validation down
                found = [("", f"cross_check of {section.type!r} raised {type(exc).__name__}: {exc}")]
            for key, message in found:
                sub = tuple(int(p) if p.isdigit() else p for p in key.split(".")) if key else ()
                issues.append(issue((*path, *sub), message))
        issues.extend(_trainer_use_issues(config, file))
    if issues or config is None:
        raise ConfigError(_unique(issues))
    return config


def _trainer_use_issues(config: ExperimentConfig, file: str) -> list[ConfigIssue]:
    """The model components and losses the trainer declares it builds, against the experiment's."""
    trainer = config.trainer
    if not isinstance(trainer, TrainerConfig):
        return []  # a 1.0 trainer config: checked when the trainer is built
    where = config.origin_of(("trainer", "type"))
    line = where.line if where else None
    try:
        use = trainer.component_use(config)
    except Exception as exc:  # a plugin's declaration must not take validation down
        message = f"component_use of {trainer.type!r} raised {type(exc).__name__}: {exc}"
        return [ConfigIssue(where.file if where else file, line, "trainer", message)]
    if use is None:
        return []
    if not isinstance(use, ComponentUse):
        message = f"component_use of {trainer.type!r} returned {type(use).__name__}, expected vfp.ComponentUse or None"
        return [ConfigIssue(where.file if where else file, line, "trainer", message)]
    return component_use_issues(config, use, file)


def _without(data: dict[str, Any], paths: Sequence[KeyPath]) -> dict[str, Any]:
    """A copy of ``data`` without the entries at ``paths`` (two-part paths: section, entry)."""
    out = dict(data)
    for section, name in paths:
        entries = dict(out[str(section)])
        entries.pop(str(name), None)
        out[str(section)] = entries
    return out


def _component_sections(config: ExperimentConfig) -> list[tuple[KeyPath, ComponentConfig]]:
    sections: list[tuple[KeyPath, ComponentConfig]] = [(("data",), config.data), (("trainer",), config.trainer)]
    sections += [(("losses", name), loss) for name, loss in config.losses.items()]
    sections += [(("optimizers", name), opt) for name, opt in config.optimizers.items()]
    sections += [(("model", name, "arch"), part.arch) for name, part in config.model.items()]
    sections += [(("logging", "callbacks", i), cb) for i, cb in enumerate(config.logging.callbacks)]
    return sections


def _unique(issues: Sequence[ConfigIssue]) -> list[ConfigIssue]:
    seen: dict[str, ConfigIssue] = {}
    for item in issues:
        seen.setdefault(str(item), item)
    return list(seen.values())


def _dotted(path: KeyPath) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _user_path(loc: Sequence[Any], data: Any) -> tuple[KeyPath, Any]:
    """Keep the loc elements that index into the data; drop union tags and validator names."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            if node.get("type") == part and "type" in node and not isinstance(node[part], dict | list):
                continue
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and node.get("type") == part:
            continue
        elif isinstance(node, dict) and isinstance(part, str) and not _looks_internal(part):
            path.append(part)  # a missing key: name it
            node = None
        else:
            continue
    return tuple(path), node


def _looks_internal(part: str) -> bool:
    return "[" in part or part.startswith(("function-", "json-or-python", "lax-", "strict-"))


def _model_at(root: type[BaseModel], data: Any, path: KeyPath) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``path`` (for listing allowed keys)."""
    annotation: Any = root
    node = data
    for part in path:
        model = _pick_model(annotation, node)
        if model is not None and isinstance(part, str) and part in model.model_fields:
            annotation = model.model_fields[part].annotation
        else:
            annotation = _strip(annotation)
            args = typing.get_args(annotation)
            origin = typing.get_origin(annotation)
            if origin is dict and len(args) == 2:
                annotation = args[1]
            elif origin is list and args:
                annotation = args[0]
            else:
                return None
        node = _child(node, part)
    return _pick_model(annotation, node)


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _strip(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _pick_model(annotation: Any, node: Any) -> type[BaseModel] | None:
    annotation = _strip(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        tag = node.get("type") if isinstance(node, dict) else None
        for member in typing.get_args(annotation):
            model = _strip(member)
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                continue
            field = model.model_fields.get("type")
            if field is not None and tag in typing.get_args(field.annotation):
                return model
    return None


def _kind_from_error(error_type: str) -> ComponentKind | None:
    prefix = "vfp_unknown_"
    if error_type.startswith(prefix):
        return ComponentKind(error_type[len(prefix) :])
    return None


_NUMBER_BOUNDS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal", "multiple_of"})


def _describe(error: Any, data: Any, model: type[BaseModel], registry: ComponentRegistry) -> tuple[KeyPath, str]:
    path, node = _user_path(error["loc"], data)
    error_type: str = error["type"]
    kind = _kind_from_error(error_type)
    if kind is not None:
        tag = node.get("type") if isinstance(node, dict) else None
        installed = ", ".join(registry.names(kind)) or "none: install a plugin that provides one"
        if not isinstance(node, dict):
            return path, f"expected a {kind} section {{type: NAME, ...}}; installed {kind} types: {installed}"
        if tag is None:
            return path, f"missing key 'type': name the {kind} to use; installed {kind} types: {installed}"
        message = registry.conflict_message(kind, str(tag)) or registry.unknown_message(kind, str(tag))
        return (*path, "type"), message
    if error_type == "extra_forbidden":
        parent = _model_at(model, data, path[:-1])
        allowed = [name for name in parent.model_fields if name != "type"] if parent else []
        message = f"unknown key {path[-1]!r}"
        close = difflib.get_close_matches(str(path[-1]), allowed, n=1, cutoff=0.6)
        if close:
            message += f" (did you mean {close[0]!r}?)"
        if allowed:
            message += f"; allowed keys: {', '.join(allowed)}"
        return path, message
    if error_type == "missing":
        return path, "required key is missing"
    if isinstance(error.get("input"), bool) and error_type in _NUMBER_BOUNDS:  # True read as 1 and out of bounds
        return path, f"expected a number, got the boolean {str(error['input']).lower()} (booleans are not numbers)"
    message = str(error["msg"])
    if error_type == "value_error" and "error" in error.get("ctx", {}):
        message = str(error["ctx"]["error"])  # a validator's own words, without pydantic's "Value error, "
    message = message[:1].lower() + message[1:]
    if "input" in error and not isinstance(error["input"], dict | list):
        message += f" (got {error['input']!r})"
    return path, message


def validate_data(data: Any, registry: ComponentRegistry, file: str = "<data>") -> ExperimentConfig:
    """Validate plain data (for example a config read back from a checkpoint)."""
    return validate(LocatedData(data, {}), registry, file)


__all__ = ["ConfigError", "LoadedConfig", "load_experiment", "validate", "validate_data"]
