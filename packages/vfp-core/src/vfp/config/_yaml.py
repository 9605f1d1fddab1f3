"""Safe YAML reading that remembers where every key was written.

Only ``yaml.SafeLoader`` machinery is used: a tag that would build a Python object is an error.
The float resolver also accepts ``1e-4`` (YAML 1.1 wants ``1.0e-4``), so such numbers are floats.

Reading is bounded, so that no file can make validation slow or large (see docs/configs.md,
"Limits"): a file is at most :data:`MAX_FILE_BYTES`, it holds at most :data:`MAX_VALUES` values
once its aliases are expanded (a "billion laughs" alias bomb stops there), and nests at most
:data:`MAX_DEPTH` levels (a self-referencing alias stops there). Every failure, including a file
that is not UTF-8, a control character or a tag whose value does not parse (``!!float abc``), is a
:class:`ConfigError` that names the file and line, and the limit that was hit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vfp.config._errors import ConfigError, ConfigIssue

KeyPath = tuple[str | int, ...]

MAX_FILE_BYTES = 1 << 20
"""Largest config file read (1 MiB; the packaged experiments are a few KiB)."""
MAX_VALUES = 20_000
"""Most values (keys, list items, scalars) one file may hold once its aliases are expanded."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists in one file."""


class _LimitHit(Exception):
    """A reading limit was hit at ``line`` (turned into a config error by :func:`parse_yaml`)."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


@dataclass(frozen=True)
class Origin:
    """Where a value came from: a file and line, or a command-line override."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file


class _Loader(yaml.SafeLoader):
    """SafeLoader with a float resolver that also reads 1e-4 and 3E+2 as floats, and nesting and
    merge-key (``<<``) expansion bounded by :data:`MAX_DEPTH` and :data:`MAX_VALUES`."""

    _depth = 0
    _nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        self._nodes += 1
        try:
            if self._nodes > MAX_VALUES:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _LimitHit(
                    f"more than {MAX_VALUES} values (limit: values per file)", int(mark.line) + 1 if mark else None
                )
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _LimitHit(
                    f"nested deeper than {MAX_DEPTH} levels (limit: nesting depth)",
                    int(mark.line) + 1 if mark else None,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        own = sum(1 for key, _ in node.value if key.tag != "tag:yaml.org,2002:merge")
        super().flatten_mapping(node)
        if len(node.value) > MAX_VALUES:
            raise _LimitHit(
                f"merge keys (<<) expand to more than {MAX_VALUES} values (limit: values per file)", _line(node)
            )
        if getattr(node, "vfp_merged", None) is None:  # an aliased mapping is flattened again: keep the first count
            node.vfp_merged = len(node.value) - own  # type: ignore[attr-defined]


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


class _Walker:
    """Turns the composed node graph into plain data, expanding aliases within :data:`MAX_VALUES`."""

    def __init__(self, loader: _Loader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.origins: dict[KeyPath, Origin] = {}
        self.count = 0

    def construct(self, node: yaml.Node) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # SafeConstructor's own failures on odd input included
            # A safe tag whose value does not parse: ``!!float abc``, ``!!int ''`` (IndexError),
            # ``!!timestamp 2020-13-45``, ``!!timestamp ''`` (AttributeError).
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            raise _LimitHit(f"{tag} cannot read {_short(node)}: {exc}", _line(node)) from None

    def walk(self, node: yaml.Node, path: KeyPath, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise _LimitHit(
                f"more than {MAX_VALUES} values once aliases are expanded (limit: values per file)", _line(node)
            )
        if depth > MAX_DEPTH:
            raise _LimitHit(
                f"nested deeper than {MAX_DEPTH} levels, counting aliases (limit: nesting depth)", _line(node)
            )
        self.origins[path] = Origin(self.file, _line(node))
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in _PLAIN_TAGS:
            # An explicit tag (!!python/object, !!set, ...): SafeConstructor builds the safe ones and
            # refuses the ones that would build Python objects.
            return self.construct(node)
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)
            merged = getattr(node, "vfp_merged", 0)
            result: dict[str, Any] = {}
            own: set[str] = set()
            for index, (key_node, value_node) in enumerate(node.value):
                key = self.construct(key_node) if isinstance(key_node, yaml.ScalarNode) else _short(key_node)
                if not isinstance(key, str):
                    key = str(key)
                # Keys merged in by ``<<`` come first; the mapping's own keys override them.
                if key in own:
                    raise ConfigError([ConfigIssue(self.file, _line(key_node), _dotted((*path, key)), "duplicate key")])
                if index >= merged:
                    own.add(key)
                result[key] = self.walk(value_node, (*path, key), depth + 1)
                self.origins[(*path, key)] = Origin(self.file, _line(key_node))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.walk(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self.construct(node)


def _short(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        text = str(node.value)
        return repr(text if len(text) <= 40 else text[:40] + "...")
    return "a mapping" if isinstance(node, yaml.MappingNode) else "a list"


def _dotted(path: KeyPath) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def parse_yaml(text: str, file: str) -> LocatedData:
    """Parse one YAML document safely, recording the line of every key (within the reading limits)."""
    if len(text) > MAX_FILE_BYTES:
        raise ConfigError([ConfigIssue(file, None, None, _too_large(len(text.encode("utf-8", "replace"))))])
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        walker = _Walker(loader, file)
        data = {} if node is None else walker.walk(node, ())
    except _LimitHit as exc:
        raise ConfigError([ConfigIssue(file, exc.line, None, exc.message)]) from None
    except RecursionError:  # a safety net: the limits above stop well before Python's stack does
        message = f"nested too deeply to read (limit: nesting depth, {MAX_DEPTH} levels)"
        raise ConfigError([ConfigIssue(file, None, None, message)]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        if isinstance(exc, yaml.constructor.ConstructorError):
            problem += " (vfp reads YAML with safe_load only: tags that build Python objects are refused)"
        raise ConfigError([ConfigIssue(file, line, None, f"invalid YAML: {problem}")]) from None
    except yaml.reader.ReaderError as exc:
        # A control character (NUL, ESC, ...) that YAML does not allow in a document.
        line = text.count("\n", 0, exc.position) + 1
        problem = f"invalid YAML: control character {chr(exc.character)!r} is not allowed (position {exc.position})"
        raise ConfigError([ConfigIssue(file, line, None, problem)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(file, None, None, f"invalid YAML: {exc}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    return LocatedData(data, walker.origins)


def _too_large(size: int) -> str:
    return f"file is {size / (1 << 20):.1f} MiB; configs are read up to {MAX_FILE_BYTES >> 20} MiB (limit: file size)"


def load_yaml_file(path: Path) -> LocatedData:
    """Read a config file: a regular file, at most :data:`MAX_FILE_BYTES`, UTF-8, safe YAML."""
    file = str(path)
    try:
        if path.exists() and not path.is_file():
            raise ConfigError([ConfigIssue(file, None, None, "not a regular file")])
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(file, None, None, "file not found")]) from None
    except OSError as exc:
        raise ConfigError([ConfigIssue(file, None, None, f"cannot read file: {exc.strerror or exc}")]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError([ConfigIssue(file, None, None, _too_large(path.stat().st_size))])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        message = f"not UTF-8 text: byte {raw[exc.start]:#04x} at offset {exc.start} (save the file as UTF-8)"
        raise ConfigError([ConfigIssue(file, line, None, message)]) from None
    return parse_yaml(text.removeprefix("\ufeff"), file)


def parse_scalar(text: str, origin: str) -> Any:
    """Parse a command-line override value the way YAML would read it."""
    if text == "":
        return ""
    return parse_yaml(text, origin).data
