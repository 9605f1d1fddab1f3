"""Plugin discovery through entry points, isolation of failing plugins, and the component registry."""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, Final, Literal

import pluggy

from vfp import hookspecs
from vfp.components import ComponentKind, ComponentSpec

ENTRY_POINT_GROUP: Final = "vfp"
CONTRACT_VERSION: Final = "1.0"
SUPPORTED_CONTRACT_MAJOR: Final = 1
DISABLE_ENV: Final = "VFP_DISABLE_PLUGINS"
STRICT_ENV: Final = "VFP_STRICT_PLUGINS"

PluginStatus = Literal["ok", "failed", "disabled"]


class PluginError(RuntimeError):
    """A plugin could not be used (raised for every failure in strict mode)."""


class PluginWarning(UserWarning):
    """A plugin failed and was left out; everything else keeps working."""


class ComponentLookupError(LookupError):
    """A component name that is not installed, or that two plugins claim."""


@dataclass
class PluginRecord:
    """What discovery learned about one entry point of the ``vfp`` group."""

    name: str
    distribution: str
    version: str
    value: str
    status: PluginStatus = "ok"
    reason: str | None = None
    contract: str | None = None
    components: list[ComponentSpec] = field(default_factory=list)
    config_dirs: list[Path] = field(default_factory=list)
    module: ModuleType | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return f"{self.name!r} ({self.distribution} {self.version})"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.value,
            "status": self.status,
            "reason": self.reason,
            "contract": self.contract,
            "components": [{"kind": str(c.kind), "name": c.name} for c in self.components],
            "config_dirs": [str(p) for p in self.config_dirs],
        }


def _env_list(name: str) -> set[str]:
    return {part.strip() for part in os.environ.get(name, "").split(",") if part.strip()}


def strict_mode() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def check_contract(declared: object) -> str | None:
    """Return why a declared contract version is refused, or None when it is supported."""
    supported = f"{SUPPORTED_CONTRACT_MAJOR}.x (this vfp-core implements {CONTRACT_VERSION})"
    if declared is None:
        return (
            f"declares no contract version; set VFP_CONTRACT = {CONTRACT_VERSION!r} in the plugin module "
            f"(supported: {supported})"
        )
    text = str(declared)
    try:
        major, minor = (int(x) for x in text.split(".", 1)) if "." in text else (int(text), 0)
    except ValueError:
        return f"declares contract version {text!r}, which is not of the form MAJOR.MINOR; supported: {supported}"
    core_minor = int(CONTRACT_VERSION.split(".")[1])
    if major != SUPPORTED_CONTRACT_MAJOR or minor > core_minor:
        return f"targets plugin contract {text}, but vfp-core supports contract {supported}"
    return None


class ComponentRegistry:
    """Installed components by kind and name; names claimed twice are held as conflicts."""

    def __init__(self) -> None:
        self._specs: dict[tuple[ComponentKind, str], ComponentSpec] = {}
        self.conflicts: dict[tuple[ComponentKind, str], list[ComponentSpec]] = {}

    def add(self, spec: ComponentSpec) -> ComponentSpec | None:
        """Add a spec; return the spec it collides with (both then become unusable)."""
        key = (spec.kind, spec.name)
        if key in self.conflicts:
            self.conflicts[key].append(spec)
            return self.conflicts[key][0]
        existing = self._specs.pop(key, None)
        if existing is not None:
            self.conflicts[key] = [existing, spec]
            return existing
        self._specs[key] = spec
        return None

    def names(self, kind: ComponentKind | str) -> list[str]:
        kind = ComponentKind(kind)
        return sorted(name for (k, name) in self._specs if k is kind)

    def specs(self, kind: ComponentKind | str) -> list[ComponentSpec]:
        kind = ComponentKind(kind)
        return [self._specs[(kind, name)] for name in self.names(kind)]

    def __contains__(self, key: tuple[ComponentKind | str, str]) -> bool:
        return (ComponentKind(key[0]), key[1]) in self._specs

    def conflict_message(self, kind: ComponentKind, name: str) -> str | None:
        claims = self.conflicts.get((kind, name))
        if not claims:
            return None
        who = " and ".join(spec.origin for spec in claims)
        plugins = ",".join(spec.plugin for spec in claims[1:])
        return (
            f"{kind} {name!r} is claimed by both {who}; uninstall one of them or disable it "
            f"(for example {DISABLE_ENV}={plugins})"
        )

    def unknown_message(self, kind: ComponentKind | str, name: str) -> str:
        kind = ComponentKind(kind)
        installed = self.names(kind)
        message = f"unknown {kind} type {name!r}"
        close = difflib.get_close_matches(name, installed, n=1, cutoff=0.5)
        if close:
            message += f" (did you mean {close[0]!r}?)"
        listing = ", ".join(installed) if installed else "none: install a plugin that provides one"
        return f"{message}; installed {kind} types: {listing}"

    def get(self, kind: ComponentKind | str, name: str) -> ComponentSpec:
        kind = ComponentKind(kind)
        spec = self._specs.get((kind, name))
        if spec is not None:
            return spec
        raise ComponentLookupError(self.conflict_message(kind, name) or self.unknown_message(kind, name))

    def load(self, kind: ComponentKind | str, name: str) -> Any:
        """Import the implementation of a component (heavy imports happen here, and only here)."""
        spec = self.get(kind, name)
        try:
            return spec.load()
        except Exception as exc:
            raise PluginError(
                f"{spec.kind} {spec.name!r} from {spec.origin} failed to load {spec.target}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc


class _PluginManager(pluggy.PluginManager):
    """Looks only at ``vfp_*`` attributes, so registering a module with many imports stays cheap."""

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        if not name.startswith(hookspecs.PROJECT_NAME + "_"):
            return None
        return super().parse_hookimpl_opts(plugin, name)


class PluginHost:
    """The typed facade over pluggy through which vfp calls every hook.

    Each plugin's hooks are called one plugin at a time, so that a plugin that raises is named,
    marked failed and left out while the others keep working (unless ``VFP_STRICT_PLUGINS=1``).
    """

    def __init__(
        self,
        disabled: Iterable[str] = (),
        *,
        strict: bool | None = None,
        entry_points: Sequence[metadata.EntryPoint] | None = None,
    ) -> None:
        self.strict = strict_mode() if strict is None else strict
        self.disabled = set(disabled) | _env_list(DISABLE_ENV)
        self.pm = _PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.records: list[PluginRecord] = []
        self.registry = ComponentRegistry()
        self._load(entry_points)

    # discovery -----------------------------------------------------------------------------
    def _load(self, entry_points: Sequence[metadata.EntryPoint] | None) -> None:
        found = entry_points if entry_points is not None else metadata.entry_points(group=ENTRY_POINT_GROUP)
        for ep in sorted(found, key=lambda e: (e.name, e.value)):
            distribution, version = _name_and_version(ep.dist)
            record = PluginRecord(name=ep.name, distribution=distribution, version=version, value=ep.value)
            self.records.append(record)
            if record.name in self.disabled or record.distribution in self.disabled:
                record.status = "disabled"
                record.reason = "disabled by --disable-plugin or " + DISABLE_ENV
                continue
            self._load_one(ep, record)
        self._register_components()

    def _fail(self, record: PluginRecord, reason: str) -> None:
        record.status = "failed"
        record.reason = reason
        record.components = []
        record.config_dirs = []
        if record.module is not None and self.pm.is_registered(record.module):
            self.pm.unregister(record.module)
        message = f"plugin {record.label} {reason}; it was left out"
        if self.strict:
            raise PluginError(message + f" ({STRICT_ENV} is set)")
        warnings.warn(message, PluginWarning, stacklevel=3)

    def _load_one(self, ep: metadata.EntryPoint, record: PluginRecord) -> None:
        try:
            module = ep.load()
        except Exception as exc:
            self._fail(record, f"failed to import {ep.value}: {type(exc).__name__}: {exc}")
            return
        if not isinstance(module, ModuleType):
            self._fail(record, f"entry point must name a module, got {type(module).__name__}")
            return
        record.contract = getattr(module, "VFP_CONTRACT", None)
        refused = check_contract(record.contract)
        if refused:
            self._fail(record, refused)
            return
        try:
            self.pm.register(module, name=f"{record.distribution}:{record.name}")
        except Exception as exc:
            self._fail(record, f"does not fit the hook specifications: {exc}")
            return
        record.module = module
        specs = self._call_plugin(record, "vfp_register_components")
        dirs = self._call_plugin(record, "vfp_config_dirs")
        if record.status != "ok":
            return
        try:
            record.components = [
                replace(_check_spec(spec), plugin=record.name, distribution=record.distribution)
                for result in specs
                for spec in result
            ]
            record.config_dirs = [Path(str(folder)) for result in dirs for folder in result]
        except (TypeError, ValueError) as exc:
            self._fail(record, f"returned an invalid registration: {exc}")

    def _call_plugin(self, record: PluginRecord, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call one hook of one plugin only; a raising plugin is marked failed."""
        if record.status != "ok" or record.module is None:
            return []
        caller = getattr(self.pm.hook, hook_name)
        results = []
        for impl in caller.get_hookimpls():
            if impl.plugin is not record.module:
                continue
            try:
                result = impl.function(**kwargs)
            except Exception as exc:
                self._fail(record, f"raised in hook {hook_name}: {type(exc).__name__}: {exc}")
                return []
            if result is not None:
                results.append(result)
        return results

    def _register_components(self) -> None:
        for record in self.records:
            for spec in record.components:
                clash = self.registry.add(spec)
                if clash is not None:
                    message = self.registry.conflict_message(spec.kind, spec.name)
                    if self.strict:
                        raise PluginError(f"{message} ({STRICT_ENV} is set)")
                    warnings.warn(f"{message}; the name is unusable until then", PluginWarning, stacklevel=3)

    # queries -------------------------------------------------------------------------------
    @property
    def active(self) -> list[PluginRecord]:
        return [r for r in self.records if r.status == "ok"]

    def config_dirs(self) -> list[tuple[PluginRecord, Path]]:
        return [(record, folder) for record in self.active for folder in record.config_dirs]

    # lifecycle hooks -----------------------------------------------------------------------
    def register_object(self, obj: object, name: str) -> None:
        """Register a run-scoped hook implementer (a callback component instance)."""
        self.pm.register(obj, name=name)

    def unregister_object(self, obj: object) -> None:
        if self.pm.is_registered(obj):
            self.pm.unregister(obj)

    def call_lifecycle(self, hook_name: str, **kwargs: Any) -> None:
        """Call a lifecycle hook on every implementer; one that raises is named and unregistered."""
        caller: pluggy.HookCaller = getattr(self.pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            try:
                impl.function(**kwargs)
            except Exception as exc:
                name = self.pm.get_name(impl.plugin) or repr(impl.plugin)
                message = f"{name} raised in {hook_name}: {type(exc).__name__}: {exc}"
                if self.strict:
                    raise PluginError(message) from exc
                warnings.warn(message + "; it is disabled for the rest of this run", PluginWarning, stacklevel=2)
                self.pm.unregister(impl.plugin)

    def add_cli_commands(self, app: Any) -> None:
        """Let every active plugin add its subcommands; a plugin that raises is left out."""
        for record in self.active:
            self._call_plugin(record, "vfp_add_cli_commands", app=app)


def _name_and_version(dist: metadata.Distribution | None) -> tuple[str, str]:
    """Name and version from the metadata header, without the (slow) full email parse."""
    if dist is None:
        return "?", "?"
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the header ends at the first blank line
        key, sep, value = line.partition(":")
        if sep and key in ("Name", "Version"):
            found.setdefault(key, value.strip())
    if len(found) < 2:
        meta = dist.metadata
        return meta["Name"] or "?", meta["Version"] or "?"
    return found["Name"], found["Version"]


def _check_spec(spec: object) -> ComponentSpec:
    if not isinstance(spec, ComponentSpec):
        raise TypeError(f"expected vfp.ComponentSpec, got {type(spec).__name__}")
    return spec


_HOST: PluginHost | None = None


def get_host(disabled: Iterable[str] = ()) -> PluginHost:
    """The process-wide plugin host, created on first use."""
    global _HOST
    if _HOST is None:
        _HOST = PluginHost(disabled)
    return _HOST


def reset_host(host: PluginHost | None = None) -> None:
    """Replace (or clear) the process-wide host; for tests and embedding."""
    global _HOST
    _HOST = host


def plugin_versions(host: PluginHost) -> Mapping[str, str]:
    return {r.distribution: r.version for r in host.records}
