"""Packaged configs contributed by plugins through the ``vfp_config_dirs`` hook.

Every YAML below a contributed folder is addressable by its relative path without suffix
(``naive_flow_matching_policy/exp1``). Files inside a ``models`` folder are model-architecture
configs and files whose name starts with ``_`` are bases to extend; the rest are experiments.
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass
from pathlib import Path

from vfp._plugins import PluginHost, PluginWarning
from vfp.config._errors import ConfigError, ConfigIssue

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class PackagedConfig:
    name: str
    path: Path
    plugin: str
    distribution: str

    @property
    def is_experiment(self) -> bool:
        parts = Path(self.name).parts
        return "models" not in parts[:-1] and not parts[-1].startswith("_")

    @property
    def is_model(self) -> bool:
        return "models" in Path(self.name).parts[:-1]


class ConfigCatalog:
    """All packaged configs of the active plugins, by name."""

    def __init__(self, host: PluginHost) -> None:
        self.entries: dict[str, PackagedConfig] = {}
        self.conflicts: dict[str, list[PackagedConfig]] = {}
        for record, folder in host.config_dirs():
            if not folder.is_dir():
                warnings.warn(
                    f"plugin {record.label} contributes config folder {folder}, which does not exist",
                    PluginWarning,
                    stacklevel=2,
                )
                continue
            for path in sorted(folder.rglob("*")):
                if path.suffix not in YAML_SUFFIXES or not path.is_file():
                    continue
                name = path.relative_to(folder).with_suffix("").as_posix()
                entry = PackagedConfig(name, path, record.name, record.distribution)
                self._add(entry)

    def _add(self, entry: PackagedConfig) -> None:
        if entry.name in self.conflicts:
            self.conflicts[entry.name].append(entry)
            return
        existing = self.entries.pop(entry.name, None)
        if existing is None:
            self.entries[entry.name] = entry
            return
        self.conflicts[entry.name] = [existing, entry]
        warnings.warn(
            f"packaged config {entry.name!r} is shipped by both {existing.distribution} and "
            f"{entry.distribution}; refer to it by path instead",
            PluginWarning,
            stacklevel=3,
        )

    def experiments(self) -> list[PackagedConfig]:
        return [e for e in self.entries.values() if e.is_experiment]

    def find(self, name: str, *, referrer: str = "<command line>", line: int | None = None) -> Path:
        entry = self.entries.get(name.removesuffix(".yaml").removesuffix(".yml"))
        if entry is not None:
            return entry.path
        if name in self.conflicts:
            who = " and ".join(e.distribution for e in self.conflicts[name])
            message = f"packaged config {name!r} is shipped by both {who}; refer to it by path"
        else:
            message = f"no config file or packaged config named {name!r}"
            close = difflib.get_close_matches(name, list(self.entries), n=3, cutoff=0.5)
            if close:
                message += f" (did you mean {', '.join(repr(c) for c in close)}?)"
            else:
                message += "; `vfp configs list` shows the packaged experiments"
        raise ConfigError([ConfigIssue(referrer, line, None, message)])
