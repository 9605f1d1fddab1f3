"""Composition of configs: ``extends``, model-architecture references and command-line overrides.

A reference that ends in ``.yaml``/``.yml`` or starts with ``./``, ``../``, ``/`` or ``~`` is a path,
relative to the file that wrote it; anything else is the name of a packaged config. The merge rules
(mappings merge, lists replace, a changed ``type`` replaces its section, a null entry of ``model``,
``losses`` or ``optimizers`` deletes it, ``~KEY.PATH`` on the command line deletes any key) are
written down for users in docs/configs.md; keep the two in step.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from vfp.config._catalog import YAML_SUFFIXES, ConfigCatalog
from vfp.config._errors import ConfigError, ConfigIssue
from vfp.config._yaml import KeyPath, LocatedData, Origin, load_yaml_file, parse_scalar

EXTENDS_KEY = "extends"
ARCH_KEY = "arch"
NAMED_MAPS = ("model", "losses", "optimizers")
COMMAND_LINE = "<command line"
DELETE_PREFIX = "~"
_INDEX = re.compile(r"-?[0-9]+")
MAX_EXTENDS_DEPTH = 32
"""Longest chain of ``extends`` (and ``arch`` references) from the experiment to a base."""
MAX_FILES = 256
"""Most files read to compose one experiment (every ``extends`` and ``arch`` reference counts)."""


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
            what = "is not a regular file" if path.exists() else "not found"
            raise ConfigError([ConfigIssue(referrer, line, None, f"referenced config file {ref!r} {what} ({path})")])
        return path.resolve()
    return catalog.find(ref, referrer=referrer, line=line)


def resolve_config_argument(ref: str | Path, catalog: ConfigCatalog) -> Path:
    """The CONFIG argument of a command: an existing file, or else a packaged name."""
    path = Path(ref).expanduser()
    if path.is_file():
        return path.resolve()
    if path.exists() and not path.is_dir():  # a FIFO, a device: reading it could block
        raise ConfigError([ConfigIssue(str(ref), None, None, "not a regular file")])
    if isinstance(ref, Path) or is_path_reference(str(ref)):
        raise ConfigError([ConfigIssue(str(ref), None, None, "file not found")])
    return catalog.find(str(ref))


def _prefixed(origins: dict[KeyPath, Origin], prefix: KeyPath) -> dict[KeyPath, Origin]:
    return {(*prefix, *path): origin for path, origin in origins.items()}


def _drop_under(origins: dict[KeyPath, Origin], prefix: KeyPath, keep: Iterable[KeyPath] = ()) -> None:
    n = len(prefix)
    kept = tuple(keep)
    for path in [p for p in origins if p[:n] == prefix]:
        if not any(path[: len(k)] == k for k in kept):
            del origins[path]


def deletes_entry(path: KeyPath) -> bool:
    """Whether a null written at ``path`` of an experiment deletes that entry (see docs/configs.md).

    Only entries of the named-component maps ``model``, ``losses`` and ``optimizers``: a null is
    never a valid value there, while elsewhere it is an ordinary value (``grad_clip_norm: null``).
    """
    return len(path) == 2 and path[0] in NAMED_MAPS and isinstance(path[1], str)


def is_command_line(origin: Origin | None) -> bool:
    return origin is not None and origin.file.startswith(COMMAND_LINE)


def _changes_type(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return "type" in a and "type" in b and a["type"] != b["type"]


def merge(base: LocatedData, over: LocatedData, *, experiment: bool = True) -> LocatedData:
    """Merge ``over`` into ``base`` by the rules of docs/configs.md.

    Mappings merge key by key; anything else (lists included) replaces. A component section whose
    ``type`` changes is replaced whole, so that another component's parameters never leak into it
    (keys that a command-line override set in it are kept). In an experiment (``experiment=True``)
    a null entry of ``model``, ``losses`` or ``optimizers`` deletes the entry it would replace; when
    there is none, the null stays and validation reports that nothing was deleted.
    """
    origins = dict(base.origins)
    over_origins = dict(over.origins)

    def go(a: Any, b: Any, path: KeyPath) -> Any:
        if isinstance(a, dict) and isinstance(b, dict) and not _changes_type(a, b):
            out = dict(a)
            for key, value in b.items():
                at = (*path, key)
                if value is None and a.get(key) is not None and experiment and deletes_entry(at):
                    del out[key]
                    _drop_under(origins, at)
                    _drop_under(over_origins, at)
                    continue
                out[key] = go(a[key], value, at) if key in a else copy.deepcopy(value)
                if key not in a and at in origins:
                    _drop_under(origins, at)
            return out
        if isinstance(a, dict) and isinstance(b, dict):  # a new type: only command-line keys survive
            kept = {
                key: value
                for key, value in a.items()
                if key not in b and is_command_line(LocatedData(a, origins).origin_of((*path, key)))
            }
            _drop_under(origins, path, keep=[(*path, key) for key in kept])
            if path not in over_origins:  # the section is now the overriding one's
                written = [o for p, o in over_origins.items() if p[: len(path)] == path]
                if written:
                    over_origins[path] = written[0]
            return {**kept, **copy.deepcopy(b)}
        if isinstance(a, dict | list):
            _drop_under(origins, path)
        else:  # a scalar has no keys below it
            origins.pop(path, None)
        return copy.deepcopy(b)

    data = go(base.data, over.data, ())
    origins.update(over_origins)
    return LocatedData(data, origins)


def _at_key(
    resolve: Callable[[str, Path | None, ConfigCatalog, str, int | None], Path],
    key: str,
    ref: str,
    base_dir: Path,
    catalog: ConfigCatalog,
    referrer: str,
    line: int | None,
) -> Path:
    """``resolve_reference`` whose errors name the key that holds the reference (``model.prior.arch``)."""
    try:
        return resolve(ref, base_dir, catalog, referrer, line)
    except ConfigError as exc:
        raise ConfigError([replace(i, path=i.path or key) for i in exc.issues]) from None


class _Budget:
    """Files read so far while composing one experiment (at most :data:`MAX_FILES`)."""

    def __init__(self) -> None:
        self.files = 0


def _check_limits(chain: Sequence[Path], budget: _Budget, referrer: str, line: int | None, key: str) -> None:
    if len(chain) >= MAX_EXTENDS_DEPTH:
        message = (
            f"references nest deeper than {MAX_EXTENDS_DEPTH} files (limit: extends depth); "
            f"the chain starts at {chain[0]}"
        )
        raise ConfigError([ConfigIssue(referrer, line, key, message)])
    budget.files += 1
    if budget.files > MAX_FILES:
        message = f"composing this experiment reads more than {MAX_FILES} files (limit: files per experiment)"
        raise ConfigError([ConfigIssue(referrer, line, key, message)])


def compose_file(
    path: Path,
    catalog: ConfigCatalog,
    _chain: Sequence[Path] = (),
    *,
    experiment: bool = True,
    _budget: _Budget | None = None,
) -> LocatedData:
    """Load a YAML file with its ``extends`` chain and its model-architecture references resolved.

    ``experiment=False`` composes a model-architecture file (no named-component maps to delete from).
    At most :data:`MAX_EXTENDS_DEPTH` files deep and :data:`MAX_FILES` files in all.
    """
    budget = _budget or _Budget()
    located = load_yaml_file(path)
    file = str(path)
    if not isinstance(located.data, dict):
        raise ConfigError([ConfigIssue(file, 1, None, "a config file must be a mapping of keys to values")])
    data: dict[str, Any] = located.data
    parents = data.pop(EXTENDS_KEY, None)
    extends_origin = located.origins.pop((EXTENDS_KEY,), None)
    _drop_under(located.origins, (EXTENDS_KEY,))
    line = extends_origin.line if extends_origin else None
    result = LocatedData({}, {})
    if parents is not None:
        if isinstance(parents, str):
            parents = [parents]
        if not (isinstance(parents, list) and all(isinstance(p, str) for p in parents)):
            raise ConfigError([ConfigIssue(file, line, EXTENDS_KEY, "expected a config reference or a list of them")])
        for parent in parents:
            parent_path = _at_key(resolve_reference, EXTENDS_KEY, parent, path.parent, catalog, file, line)
            if parent_path in (*_chain, path):
                cycle = " -> ".join(str(p) for p in (*_chain, path, parent_path))
                raise ConfigError([ConfigIssue(file, line, EXTENDS_KEY, f"circular extends: {cycle}")])
            _check_limits((*_chain, path), budget, file, line, EXTENDS_KEY)
            parent_data = compose_file(parent_path, catalog, (*_chain, path), experiment=experiment, _budget=budget)
            result = merge(result, parent_data, experiment=experiment)
    _resolve_arch_references(located, path, catalog, _chain, budget)
    return merge(result, located, experiment=experiment)


def _resolve_arch_references(
    located: LocatedData, path: Path, catalog: ConfigCatalog, chain: Sequence[Path], budget: _Budget
) -> None:
    model = located.data.get("model")
    if not isinstance(model, dict):
        return
    for name, component in model.items():
        if not isinstance(component, dict) or not isinstance(component.get(ARCH_KEY), str):
            continue
        key: KeyPath = ("model", name, ARCH_KEY)
        origin = located.origins.get(key)
        line = origin.line if origin else None
        arch_path = _at_key(resolve_reference, _dotted(key), component[ARCH_KEY], path.parent, catalog, str(path), line)
        if arch_path in (*chain, path):
            cycle = " -> ".join(str(p) for p in (*chain, path, arch_path))
            raise ConfigError([ConfigIssue(str(path), line, _dotted(key), f"circular reference: {cycle}")])
        _check_limits((*chain, path), budget, str(path), line, _dotted(key))
        arch = compose_file(arch_path, catalog, (*chain, path), experiment=False, _budget=budget)
        component[ARCH_KEY] = arch.data
        _drop_under(located.origins, key)
        located.origins.update(_prefixed(arch.origins, key))
        located.origins[key] = origin or Origin(str(path))


def is_override(text: str) -> bool:
    """Whether a command-line word is an override (``KEY.PATH=VALUE`` or ``~KEY.PATH``), not a config."""
    return "=" in text or (text.startswith(DELETE_PREFIX) and "/" not in text)


def parse_override_path(text: str) -> KeyPath:
    # ASCII digits only: str.isdigit() is also true of '¹' and '٣', which int() refuses.
    return tuple(int(part) if _INDEX.fullmatch(part) else part for part in text.split("."))


def _dotted(path: KeyPath) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _nest(path: KeyPath, value: Any) -> Any:
    for part in reversed(path):
        value = {part: value}
    return value


def _every_path(value: Any, prefix: KeyPath) -> list[KeyPath]:
    paths = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            paths += _every_path(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            paths += _every_path(item, (*prefix, i))
    return paths


class _OverrideError(Exception):
    pass


def _concrete(data: Any, path: KeyPath) -> tuple[KeyPath, int]:
    """``path`` as stored (mapping keys as strings, list indices counted from the front), and how
    many of its leading parts lead to the deepest list item it goes through (0: none)."""
    node: Any = data
    out: list[str | int] = []
    through = 0
    for i, part in enumerate(path):
        if isinstance(node, list):
            if not (isinstance(part, int) and -len(node) <= part < len(node)):
                raise _OverrideError(f"{_dotted(path[:i])!r} is a list of {len(node)}: no item {part!r}")
            out.append(part % len(node))
            node = node[part % len(node)]
            through = i + 1
        elif isinstance(node, dict) or node is None:
            out.append(str(part))
            node = node.get(str(part)) if isinstance(node, dict) else None
        else:
            raise _OverrideError(f"{_dotted(path[:i])!r} is not a mapping or list")
    return tuple(out), through


def _set(located: LocatedData, path: KeyPath, value: Any, origin: Origin) -> LocatedData:
    """``KEY.PATH=VALUE``: merged at the path as if an extending file wrote it there."""
    path, through = _concrete(located.data, path)
    value_origins = {p: origin for p in _every_path(value, path)}
    if through == 0:
        return merge(located, LocatedData(_nest(path, value), value_origins))
    # Inside a list item: merge into that item (lists themselves are never merged).
    item_path = path[:through]
    parent: Any = located.data
    for part in item_path[:-1]:
        parent = parent[part]

    def relative(origins: dict[KeyPath, Origin]) -> dict[KeyPath, Origin]:
        return {p[through:]: o for p, o in origins.items() if p[:through] == item_path}

    item = LocatedData(parent[item_path[-1]], relative(located.origins))
    merged = merge(item, LocatedData(_nest(path[through:], value), relative(value_origins)), experiment=False)
    parent[item_path[-1]] = merged.data
    _drop_under(located.origins, item_path)
    located.origins.update(_prefixed(merged.origins, item_path))
    return located


def _delete(located: LocatedData, path: KeyPath) -> None:
    """``~KEY.PATH``: remove the key (or list item) at the path."""
    node: Any = located.data
    done: list[str | int] = []
    for i, part in enumerate(path):
        where = _dotted(tuple(done))
        if isinstance(node, dict):
            part = str(part)
            if part not in node:
                has = ", ".join(str(k) for k in node) or "nothing"
                raise _OverrideError(f"nothing to delete: {where!r} has no key {part!r} (it has: {has})")
        elif isinstance(node, list):
            if not (isinstance(part, int) and -len(node) <= part < len(node)):
                raise _OverrideError(f"nothing to delete: {where!r} is a list of {len(node)}: no item {part!r}")
            part = part % len(node)
        else:
            raise _OverrideError(f"nothing to delete: {where!r} is not a mapping or list")
        if i < len(path) - 1:
            node = node[part]
            done.append(part)
            continue
        del node[part]
        if isinstance(part, int):
            _remove_item_origins(located.origins, tuple(done), part)
        else:
            _drop_under(located.origins, (*done, part))


def _remove_item_origins(origins: dict[KeyPath, Origin], list_path: KeyPath, index: int) -> None:
    """Drop the origins of item ``index`` of the list at ``list_path``; later items move up by one."""
    n = len(list_path)
    moved: dict[KeyPath, Origin] = {}
    for key in [k for k in origins if len(k) > n and k[:n] == list_path and isinstance(k[n], int)]:
        origin = origins.pop(key)
        position = key[n]
        assert isinstance(position, int)
        if position != index:
            moved[(*list_path, position - 1 if position > index else position, *key[n + 1 :])] = origin
    origins.update(moved)


def apply_overrides(located: LocatedData, overrides: Iterable[str]) -> LocatedData:
    """Apply command-line overrides after everything else, left to right (see docs/configs.md).

    ``KEY.PATH=VALUE`` (the value read as YAML) is merged at the path as if an extending file had
    written it there: a mapping merges into the mapping it meets, a changed ``type`` replaces the
    section, a null entry of ``model``/``losses``/``optimizers`` deletes it. ``~KEY.PATH`` deletes
    the key, or the list item, at the path.
    """
    issues: list[ConfigIssue] = []
    for override in overrides:
        shown = override if len(override) <= 80 else override[:77] + "..."
        where = f"override {shown!r}"
        text = override.strip()
        deleting = text.startswith(DELETE_PREFIX)
        key, sep, raw = text.removeprefix(DELETE_PREFIX).partition("=")
        key = key.strip()
        if deleting and (sep or not key):
            message = f"{where}: ~KEY.PATH deletes a key and takes no value" if key else f"{where}: expected ~KEY.PATH"
            issues.append(ConfigIssue(f"{COMMAND_LINE}>", None, None, message))
            continue
        if not deleting and (not sep or not key):
            issues.append(ConfigIssue(f"{COMMAND_LINE}>", None, None, f"{where}: expected KEY.PATH=VALUE or ~KEY.PATH"))
            continue
        path = parse_override_path(key)
        origin = Origin(f"{COMMAND_LINE} {where}>")
        try:
            if deleting:
                _delete(located, path)
            else:
                located = _set(located, path, parse_scalar(raw, origin.file), origin)
        except ConfigError as exc:
            issues.extend(exc.issues)
        except _OverrideError as exc:
            issues.append(ConfigIssue(f"{COMMAND_LINE}>", None, key, f"{where}: {exc}"))
    if issues:
        raise ConfigError(issues)
    return located
