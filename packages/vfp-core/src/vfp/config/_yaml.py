"""Safe YAML reading that remembers where every key was written.

Only ``yaml.SafeLoader`` machinery is used: a tag that would build a Python object is an error.
The float resolver also accepts ``1e-4`` (YAML 1.1 wants ``1.0e-4``), so such numbers are floats.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vfp.config._errors import ConfigError, ConfigIssue

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Origin:
    """Where a value came from: a file and line, or a command-line override."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file


class _Loader(yaml.SafeLoader):
    """SafeLoader with a float resolver that also reads 1e-4 and 3E+2 as floats."""


_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _first in list("-+0123456789."):
    _Loader.yaml_implicit_resolvers[_first] = [
        (tag, rx) for tag, rx in _Loader.yaml_implicit_resolvers.get(_first, []) if tag != "tag:yaml.org,2002:float"
    ]
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


class LocatedData:
    """Plain YAML data plus the origin of every key path in it."""

    def __init__(self, data: Any, origins: dict[KeyPath, Origin]) -> None:
        self.data = data
        self.origins = origins

    def origin_of(self, path: KeyPath) -> Origin | None:
        """The origin of ``path``, or of its nearest written ancestor."""
        for end in range(len(path), -1, -1):
            found = self.origins.get(path[:end])
            if found is not None:
                return found
        return None


def _walk(loader: _Loader, node: yaml.Node, path: KeyPath, origins: dict[KeyPath, Origin], file: str) -> Any:
    origins[path] = Origin(file, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in _PLAIN_TAGS:
        # An explicit tag (!!python/object, !!set, ...): SafeConstructor builds the safe ones and
        # refuses the ones that would build Python objects.
        return loader.construct_object(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            if key in result:
                raise ConfigError(
                    [ConfigIssue(file, key_node.start_mark.line + 1, _dotted((*path, key)), "duplicate key")]
                )
            result[key] = _walk(loader, value_node, (*path, key), origins, file)
            origins[(*path, key)] = Origin(file, key_node.start_mark.line + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_walk(loader, item, (*path, i), origins, file) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _dotted(path: KeyPath) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def parse_yaml(text: str, file: str) -> LocatedData:
    """Parse one YAML document safely, recording the line of every key."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        origins: dict[KeyPath, Origin] = {}
        data = {} if node is None else _walk(loader, node, (), origins, file)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        if isinstance(exc, yaml.constructor.ConstructorError):
            problem += " (vfp reads YAML with safe_load only: tags that build Python objects are refused)"
        raise ConfigError([ConfigIssue(file, line, None, f"invalid YAML: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(file, None, None, f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    return LocatedData(data, origins)


def load_yaml_file(path: Path) -> LocatedData:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(str(path), None, None, "file not found")]) from None
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), None, None, f"cannot read file: {exc.strerror}")]) from None
    return parse_yaml(text, str(path))


def parse_scalar(text: str, origin: str) -> Any:
    """Parse a command-line override value the way YAML would read it."""
    if text == "":
        return ""
    return parse_yaml(text, origin).data
