"""Composition of configs: ``extends``, model-architecture references and command-line overrides.

A reference that ends in ``.yaml``/``.yml`` or starts with ``./``, ``../``, ``/`` or ``~`` is a path,
relative to the file that wrote it; anything else is the name of a packaged config.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from vfp.config._catalog import YAML_SUFFIXES, ConfigCatalog
from vfp.config._errors import ConfigError, ConfigIssue
from vfp.config._yaml import KeyPath, LocatedData, Origin, load_yaml_file, parse_scalar

EXTENDS_KEY = "extends"
ARCH_KEY = "arch"


def is_path_reference(ref: str) -> bool:
    return ref.endswith(YAML_SUFFIXES) or ref.startswith(("./", "../", "/", "~"))


def resolve_reference(
    ref: str, base_dir: Path | None, catalog: ConfigCatalog, referrer: str = "<command line>", line: int | None = None
) -> Path:
    """Turn a config reference into a file path (relative paths are taken from ``base_dir``)."""
    if is_path_reference(ref):
        path = Path(ref).expanduser()
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        if not path.is_file():
            raise ConfigError([ConfigIssue(referrer, line, None, f"referenced config file {ref!r} not found ({path})")])
        return path.resolve()
    return catalog.find(ref, referrer=referrer, line=line)


def resolve_config_argument(ref: str | Path, catalog: ConfigCatalog) -> Path:
    """The CONFIG argument of a command: an existing file, or else a packaged name."""
    path = Path(ref).expanduser()
    if path.is_file():
        return path.resolve()
    if isinstance(ref, Path) or is_path_reference(str(ref)):
        raise ConfigError([ConfigIssue(str(ref), None, None, "file not found")])
    return catalog.find(str(ref))


def _prefixed(origins: dict[KeyPath, Origin], prefix: KeyPath) -> dict[KeyPath, Origin]:
    return {(*prefix, *path): origin for path, origin in origins.items()}


def _drop_under(origins: dict[KeyPath, Origin], prefix: KeyPath) -> None:
    n = len(prefix)
    for path in [p for p in origins if p[:n] == prefix]:
        del origins[path]


def merge(base: LocatedData, over: LocatedData) -> LocatedData:
    """Deep-merge ``over`` into ``base``: mappings merge, anything else replaces.

    A component section whose ``type`` changes is replaced whole, so that the parent's parameters
    of another component never leak into it.
    """
    origins = dict(base.origins)

    def go(a: Any, b: Any, path: KeyPath) -> Any:
        if isinstance(a, dict) and isinstance(b, dict) and ("type" not in b or a.get("type") == b.get("type")):
            out = dict(a)
            for key, value in b.items():
                out[key] = go(a[key], value, (*path, key)) if key in a else copy.deepcopy(value)
                if key not in a:
                    _drop_under(origins, (*path, key))
            return out
        _drop_under(origins, path)
        return copy.deepcopy(b)

    data = go(base.data, over.data, ())
    origins.update(over.origins)
    return LocatedData(data, origins)


def compose_file(path: Path, catalog: ConfigCatalog, _chain: Sequence[Path] = ()) -> LocatedData:
    """Load a YAML file with its ``extends`` chain and its model-architecture references resolved."""
    if path in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path))
        raise ConfigError([ConfigIssue(str(path), None, EXTENDS_KEY, f"circular extends: {cycle}")])
    located = load_yaml_file(path)
    file = str(path)
    if not isinstance(located.data, dict):
        raise ConfigError([ConfigIssue(file, 1, None, "a config file must be a mapping of keys to values")])
    data: dict[str, Any] = located.data
    parents = data.pop(EXTENDS_KEY, None)
    extends_origin = located.origins.pop((EXTENDS_KEY,), None)
    _drop_under(located.origins, (EXTENDS_KEY,))
    result = LocatedData({}, {})
    if parents is not None:
        if isinstance(parents, str):
            parents = [parents]
        if not (isinstance(parents, list) and all(isinstance(p, str) for p in parents)):
            line = extends_origin.line if extends_origin else None
            raise ConfigError([ConfigIssue(file, line, EXTENDS_KEY, "expected a config reference or a list of them")])
        for parent in parents:
            parent_path = resolve_reference(
                parent, path.parent, catalog, file, extends_origin.line if extends_origin else None
            )
            result = merge(result, compose_file(parent_path, catalog, (*_chain, path)))
    _resolve_arch_references(located, path, catalog, _chain)
    return merge(result, located)


def _resolve_arch_references(located: LocatedData, path: Path, catalog: ConfigCatalog, chain: Sequence[Path]) -> None:
    model = located.data.get("model")
    if not isinstance(model, dict):
        return
    for name, component in model.items():
        if not isinstance(component, dict) or not isinstance(component.get(ARCH_KEY), str):
            continue
        key: KeyPath = ("model", name, ARCH_KEY)
        origin = located.origins.get(key)
        line = origin.line if origin else None
        arch_path = resolve_reference(component[ARCH_KEY], path.parent, catalog, str(path), line)
        arch = compose_file(arch_path, catalog, (*chain, path))
        component[ARCH_KEY] = arch.data
        _drop_under(located.origins, key)
        located.origins.update(_prefixed(arch.origins, key))
        located.origins[key] = origin or Origin(str(path))


def parse_override_path(text: str) -> KeyPath:
    return tuple(int(part) if part.lstrip("-").isdigit() else part for part in text.split("."))


def apply_overrides(located: LocatedData, overrides: Iterable[str]) -> LocatedData:
    """Apply ``key.path=value`` overrides (values parsed as YAML) after everything else."""
    issues: list[ConfigIssue] = []
    for override in overrides:
        where = f"override {override!r}"
        key, sep, raw = override.partition("=")
        if not sep or not key.strip():
            issues.append(ConfigIssue("<command line>", None, None, f"{where}: expected KEY.PATH=VALUE"))
            continue
        path = parse_override_path(key.strip())
        try:
            value = parse_scalar(raw, f"<command line {where}>")
        except ConfigError as exc:
            issues.extend(exc.issues)
            continue
        node: Any = located.data
        actual: list[str | int] = []
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if isinstance(node, dict):
                part = str(part)
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            elif isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node):
                part = part % len(node)
                if last:
                    node[part] = value
                else:
                    node = node[part]
            else:
                prefix = ".".join(str(p) for p in path[:i]) or "<top level>"
                issues.append(ConfigIssue("<command line>", None, key, f"{where}: {prefix!r} is not a mapping or list"))
                break
            actual.append(part)
        else:
            _drop_under(located.origins, tuple(actual))
            located.origins[tuple(actual)] = Origin(f"<command line {where}>")
    if issues:
        raise ConfigError(issues)
    return located
