"""Checks across the sections of an experiment that need no data and no torch.

``vfp config validate`` runs them, so it refuses what ``vfp train`` would refuse. The engine calls
the same functions after building the trainer, as a safety net for trainers that do not declare
what they build (:meth:`vfp.TrainerConfig.component_use` returning None), and gets the same
messages with the same file and line.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from vfp.components import ComponentUse
from vfp.config._compose import NAMED_MAPS
from vfp.config._errors import ConfigIssue
from vfp.config._yaml import KeyPath

if TYPE_CHECKING:
    from vfp.config._schema import ExperimentConfig

__all__ = ["component_use_issues", "config_issue_at", "missing_component_issue"]

Section = Literal["model", "losses"]
_WHAT: dict[Section, str] = {"model": "model component", "losses": "loss"}


def _dotted(path: KeyPath) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def config_issue_at(config: ExperimentConfig, path: KeyPath, message: str, file: str) -> ConfigIssue:
    """A config issue at ``path``, located where the key was written (``file`` when unknown)."""
    origin = config.origin_of(path)
    return ConfigIssue(origin.file if origin else file, origin.line if origin else None, _dotted(path), message)


def _where_missing(config: ExperimentConfig, section: Section) -> KeyPath:
    """Where to point for an entry the section lacks: the section if written, else ``trainer.type``."""
    return (section,) if config.origin_of((section,), exact=True) else ("trainer", "type")


def missing_component_issue(config: ExperimentConfig, section: Section, name: str, file: str) -> ConfigIssue:
    """The trainer needs ``model.<name>`` (or ``losses.<name>``), which the experiment does not define."""
    defined: Mapping[str, Any] = config.model if section == "model" else config.losses
    message = (
        f"trainer {config.trainer.type!r} needs a {_WHAT[section]} named {name!r}; "
        f"the config defines: {', '.join(defined) or 'none'}"
    )
    origin = config.origin_of(_where_missing(config, section))
    return ConfigIssue(origin.file if origin else file, origin.line if origin else None, f"{section}.{name}", message)


def component_use_issues(config: ExperimentConfig, use: ComponentUse, file: str) -> list[ConfigIssue]:
    """Every ``model``/``losses`` entry the trainer does not use, and every one it uses that is missing."""
    issues: list[ConfigIssue] = []
    sections: tuple[tuple[Section, frozenset[str]], ...] = (("model", use.models), ("losses", use.losses))
    for section, used in sections:
        defined: Mapping[str, Any] = config.model if section == "model" else config.losses
        listed = ", ".join(sorted(used)) or "none"
        for name in defined:
            if name not in used:
                message = (
                    f"trainer {config.trainer.type!r} does not use this {_WHAT[section]} (it uses: {listed}); "
                    "remove it or check its name"
                )
                issues.append(config_issue_at(config, (section, name), message, file))
        issues += [missing_component_issue(config, section, name, file) for name in sorted(used - set(defined))]
    return issues


def cross_section_problems(data: Any) -> list[tuple[KeyPath, str]]:
    """Checks on the plain data, before and independently of validation.

    Every trainable model component names an optimizer that exists, and every optimizer trains
    some model component (a frozen component's ``optimizer`` still counts as a use).
    """
    found: list[tuple[KeyPath, str]] = []
    if not isinstance(data, dict):
        return found
    model, optimizers = data.get("model", {}), data.get("optimizers")
    if not (isinstance(model, dict) and isinstance(optimizers, dict)):
        return found
    used: set[str] = set()
    for name, component in model.items():
        if not isinstance(component, dict):
            continue
        wanted = component.get("optimizer", "default")
        if not isinstance(wanted, str):
            continue
        used.add(wanted)
        if component.get("freeze") is not True and wanted not in optimizers:
            defined = ", ".join(optimizers) or "none"
            found.append(
                (("model", name, "optimizer"), f"no optimizer named {wanted!r}; defined in 'optimizers': {defined}")
            )
    if all(isinstance(component, dict) for component in model.values()):
        for name in optimizers:
            if name not in used:
                found.append(
                    (
                        ("optimizers", name),
                        f"no model component uses this optimizer (set model.<component>.optimizer: {name})",
                    )
                )
    return found


def deletion_leftovers(data: Any) -> list[tuple[KeyPath, str]]:
    """Null entries of the named-component maps that deleted nothing (see docs/configs.md)."""
    found: list[tuple[KeyPath, str]] = []
    if not isinstance(data, dict):
        return found
    for section in NAMED_MAPS:
        entries = data.get(section)
        if not isinstance(entries, dict):
            continue
        for name, value in entries.items():
            if value is None:
                others = ", ".join(k for k, v in entries.items() if v is not None) or "none"
                found.append(
                    (
                        (section, name),
                        f"null deletes an inherited entry, but no config extended before this one defines "
                        f"{section}.{name} (entries of {section!r}: {others})",
                    )
                )
    return found


def coercion_problems(data: Any, validated: Any, path: KeyPath = ()) -> list[tuple[KeyPath, str]]:
    """Values that pydantic's lax mode accepted but a config must not: a boolean where a number is
    wanted (``batch_size: true`` would be 1) and a number that is not finite (``lr: .inf``, ``nan``).

    Walks the user's plain ``data`` alongside the ``validated`` models, so it holds for every
    component's config, a third-party plugin's included, without each field having to opt in.
    """
    found: list[tuple[KeyPath, str]] = []
    if isinstance(validated, BaseModel) and isinstance(data, dict):
        for name, field in type(validated).model_fields.items():
            key = field.alias or name
            if key in data:
                found += coercion_problems(data[key], getattr(validated, name, None), (*path, key))
    elif isinstance(validated, dict) and isinstance(data, dict):
        for key, value in data.items():
            if key in validated:
                found += coercion_problems(value, validated[key], (*path, key))
    elif isinstance(validated, list | tuple) and isinstance(data, list) and len(data) == len(validated):
        for i, (raw, value) in enumerate(zip(data, validated, strict=True)):
            found += coercion_problems(raw, value, (*path, i))
    elif isinstance(data, bool) and isinstance(validated, int | float) and not isinstance(validated, bool):
        found.append((path, f"expected a number, got the boolean {str(data).lower()} (booleans are not numbers)"))
    elif isinstance(validated, float) and not math.isfinite(validated):
        found.append((path, f"expected a finite number, got {data!r}"))
    return found


_WRITES_TO = ("filename", "subdir", "path", "file", "dir")


def duplicate_callback_problems(config: ExperimentConfig) -> list[tuple[KeyPath, str]]:
    """Two loggers of the same type writing the same file (``filename``/``subdir``, defaults included),
    or two identical ones: every line would be written twice."""
    found: list[tuple[KeyPath, str]] = []
    seen: dict[str, int] = {}
    for i, callback in enumerate(config.logging.callbacks):
        dumped = callback.model_dump(mode="json")
        target = {k: v for k, v in dumped.items() if k in _WRITES_TO} or dumped
        key = repr((callback.type, sorted(target.items())))
        if key in seen:
            where = ", ".join(f"{k}: {v}" for k, v in target.items() if k != "type") or "the same settings"
            found.append(
                (
                    ("logging", "callbacks", i),
                    f"logs to the same place as logging.callbacks.{seen[key]} ({callback.type!r}, {where}): every "
                    "line would be written twice; remove one or give it another file",
                )
            )
        else:
            seen[key] = i
    return found


CHECKPOINTS_DIR = "checkpoints"


def init_from_problems(config: ExperimentConfig) -> list[tuple[KeyPath, str]]:
    """``model.<name>.init_from`` names a checkpoint file or a run directory that holds one.

    Checked without torch, when the path exists: a file must be a regular file in torch's zip layout
    (an archive holding a ``data.pkl``); a directory must hold ``*.pt`` files in its ``checkpoints/``
    folder. A path that does not exist yet (a run to be trained first) and whether the weights fit
    the component are checked when training builds it. A relative path is taken from the working
    directory, as training takes it.
    """
    found: list[tuple[KeyPath, str]] = []
    for name, part in config.model.items():
        if part.init_from is None:
            continue
        key: KeyPath = ("model", name, "init_from")
        reference = part.init_from.partition("#")[0]
        try:
            path = Path(reference).expanduser()
            problem = _checkpoint_problem(path)
        except (OSError, RuntimeError, ValueError) as exc:  # an unreadable path, a "~user" that does not exist
            problem = f"cannot be read: {exc}"
        if problem is not None:
            found.append((key, f"{reference!r} {problem}"))
    return found


def _checkpoint_problem(path: Path) -> str | None:
    if path.is_dir():
        folder = path if path.name == CHECKPOINTS_DIR else path / CHECKPOINTS_DIR
        if folder.is_dir() and any(folder.glob("*.pt")):
            return None
        return f"is a directory without checkpoints (expected a run directory with {CHECKPOINTS_DIR}/*.pt)"
    if not path.exists():
        return None  # perhaps a run still to be trained: training says so if it is still missing then
    if not path.is_file():
        return "is not a regular file (expected a checkpoint file or a run directory)"
    if not zipfile.is_zipfile(path):
        return "is not a checkpoint: torch checkpoints are zip archives"
    with zipfile.ZipFile(path) as archive:
        if not any(entry == "data.pkl" or entry.endswith("/data.pkl") for entry in archive.namelist()):
            return "is not a checkpoint: a zip archive without the data.pkl of torch.save"
    return None
