"""Plugin discovery through entry points, isolation of failing plugins, and the component registry.

Private to vfp-core (the CLI and the engine use it); plugin authors never import from here. The
:class:`PluginHost` is the typed facade over pluggy: every hook is called through one method of it
(``on_train_start``, ``on_step_end``, ..., ``add_cli_commands``), never by name from outside.
"""

from __future__ import annotations

import difflib
import os
import sys
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, Literal

import pluggy

from vfp import hookspecs
from vfp.components import ComponentKind, ComponentSpec

if TYPE_CHECKING:
    import typer

    from vfp.lifecycle import RunInfo, RunStatus

ENTRY_POINT_GROUP: Final = "vfp"
CONTRACT_VERSION: Final = "1.1"
SUPPORTED_CONTRACTS: Final = ("1.0", "1.1")
"""Contract versions a plugin may declare: every 1.x up to the one this vfp-core implements."""
SUPPORTED_CONTRACT_MAJOR: Final = 1
DISABLE_ENV: Final = "VFP_DISABLE_PLUGINS"
STRICT_ENV: Final = "VFP_STRICT_PLUGINS"
IMPORT_THRESHOLD_ENV: Final = "VFP_PLUGIN_IMPORT_THRESHOLD"
DEFAULT_IMPORT_THRESHOLD: Final = 0.5
"""Seconds a plugin's entry-point module may take to import before discovery warns about it."""

PluginStatus = Literal["ok", "conflict", "failed", "disabled"]
"""``conflict``: the plugin works, but a name it registers is claimed by another plugin too."""
ACTIVE_STATUSES: Final = ("ok", "conflict")
LifecycleHook = Literal[
    "vfp_on_train_start", "vfp_on_step_end", "vfp_on_evaluation_end", "vfp_on_checkpoint_saved", "vfp_on_train_end"
]


class PluginError(RuntimeError):
    """A plugin could not be used (raised for every failure in strict mode)."""


class PluginWarning(UserWarning):
    """A plugin failed and was left out, or works but has a problem (a slow import, a name conflict)."""


class PluginInterrupted(PluginError, KeyboardInterrupt):
    """A ``KeyboardInterrupt`` (Ctrl-C, or raised by the plugin) while a plugin's module was imported.

    The command stops (exit 130) with one line naming the plugin, no traceback: a Ctrl-C during a slow
    import means "stop", so it is not turned into a failed plugin like ``SystemExit`` is. It is still a
    ``KeyboardInterrupt`` for a program that embeds vfp.
    """


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
    import_seconds: float | None = None
    """Wall time of importing the entry-point module (None when it was not imported)."""
    imports_torch: bool | None = None
    """Whether importing the entry-point module imported torch (None: unknown, torch was already loaded)."""
    problems: list[str] = field(default_factory=list)
    """What works but should be fixed (a slow or torch-importing light module)."""
    conflicts: list[Conflict] = field(default_factory=list)
    """Names this plugin registers that another plugin claims too (unusable until one is removed)."""

    @property
    def label(self) -> str:
        return f"{self.name!r} ({self.distribution} {self.version})"

    @property
    def active(self) -> bool:
        """True when the plugin was loaded and its hooks are called (``ok`` or ``conflict``)."""
        return self.status in ACTIVE_STATUSES

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
            "import_seconds": None if self.import_seconds is None else round(self.import_seconds, 4),
            "imports_torch": self.imports_torch,
            "problems": list(self.problems),
            "conflicts": [conflict.as_json() for conflict in self.conflicts],
        }


@dataclass(frozen=True)
class Conflict:
    """One component name claimed by several plugins, and how to resolve it."""

    kind: ComponentKind
    name: str
    claims: tuple[ComponentSpec, ...]

    @property
    def plugins(self) -> list[str]:
        return [spec.plugin for spec in self.claims]

    def message(self) -> str:
        """The problem and every way out: keep either claimant (disable the others) or uninstall one."""
        who = " and ".join(spec.origin for spec in self.claims)
        ways = [
            f"disable plugin {spec.plugin!r} (--disable-plugin {spec.plugin} or {DISABLE_ENV}={spec.plugin})"
            for spec in self.claims
        ]
        known = [d for d in dict.fromkeys(spec.distribution for spec in self.claims) if d and d != "?"]
        uninstall = " or ".join(known) if len(known) == len(self.claims) else "one of them"
        return (
            f"{self.kind} {self.name!r} is claimed by both {who}, so neither can be used; "
            f"to keep one, {' or '.join(ways)}, or uninstall {uninstall}"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "name": self.name,
            "claimed_by": [{"plugin": s.plugin, "distribution": s.distribution} for s in self.claims],
            "message": self.message(),
        }


def _env_list(name: str) -> set[str]:
    return {part.strip() for part in os.environ.get(name, "").split(",") if part.strip()}


def strict_mode() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def import_threshold() -> float:
    """Seconds an entry-point module may take to import (``VFP_PLUGIN_IMPORT_THRESHOLD``, default 0.5)."""
    text = os.environ.get(IMPORT_THRESHOLD_ENV, "").strip()
    try:
        return float(text) if text else DEFAULT_IMPORT_THRESHOLD
    except ValueError:
        warnings.warn(
            f"{IMPORT_THRESHOLD_ENV}={text!r} is not a number of seconds; using {DEFAULT_IMPORT_THRESHOLD}",
            PluginWarning,
            stacklevel=2,
        )
        return DEFAULT_IMPORT_THRESHOLD


def check_contract(declared: object) -> str | None:
    """Return why a declared contract version is refused, or None when it is supported."""
    versions = ", ".join(SUPPORTED_CONTRACTS)
    supported = f"{SUPPORTED_CONTRACT_MAJOR}.x (versions {versions}; this vfp-core implements {CONTRACT_VERSION})"
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

    def conflict(self, kind: ComponentKind, name: str) -> Conflict | None:
        claims = self.conflicts.get((kind, name))
        return Conflict(kind, name, tuple(claims)) if claims else None

    def all_conflicts(self) -> list[Conflict]:
        """Every name claimed more than once, sorted by kind and name."""
        return [Conflict(k, n, tuple(self.conflicts[(k, n)])) for k, n in sorted(self.conflicts)]

    def conflict_message(self, kind: ComponentKind, name: str) -> str | None:
        conflict = self.conflict(kind, name)
        return conflict.message() if conflict else None

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
        self._registry = ComponentRegistry()
        self._validators_checked = False
        self._schemas_checked = False
        self._threshold = import_threshold()
        self._load(entry_points)

    @property
    def registry(self) -> ComponentRegistry:
        """The installed components, once every plugin's config models were checked to build a validator.

        The check (0.1 to 1 ms per config model) runs on first use, not at discovery, so ``vfp --help``
        does not pay for it; a plugin with a config model that cannot be built is then marked failed and
        its components left out. :attr:`schema_registry` also checks that each model has a JSON Schema.
        """
        if not self._validators_checked:
            self._validators_checked = True
            self._check_config_models(json_schema=False)
        return self._registry

    @property
    def schema_registry(self) -> ComponentRegistry:
        """:attr:`registry`, once every config model was also checked to have a JSON Schema.

        For ``vfp config schema``: a model that validates but has no JSON Schema (a ``Callable`` field,
        say) would otherwise break the schema of every experiment. Only the commands that write a
        schema pay for the check (generating a model's JSON Schema costs more than building its
        validator); the plugin is then marked failed and left out, with a warning naming it.
        """
        registry = self.registry
        if not self._schemas_checked:
            self._schemas_checked = True
            self._check_config_models(json_schema=True)
            registry = self._registry
        return registry

    def _check_config_models(self, *, json_schema: bool) -> None:
        broken = False
        for record in self.active:
            for spec in record.components:
                problem = _config_model_problem(spec, json_schema=json_schema)
                if problem is not None:
                    self._fail(record, problem)
                    broken = True
                    break
        if broken:  # rebuild the registry without the failed plugins' components
            self._registry = ComponentRegistry()
            for record in self.records:
                record.conflicts.clear()
                if record.status == "conflict":
                    record.status, record.reason = "ok", None
            self._register_components(warn=False)

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

    def _problem(self, record: PluginRecord, problem: str) -> None:
        """A plugin that works but should be fixed: warned about, and fatal in strict mode."""
        record.problems.append(problem)
        message = f"plugin {record.label} {problem}"
        if self.strict:
            raise PluginError(message + f" ({STRICT_ENV} is set)")
        warnings.warn(message, PluginWarning, stacklevel=4)

    def _load_one(self, ep: metadata.EntryPoint, record: PluginRecord) -> None:
        torch_before = "torch" in sys.modules
        started = time.perf_counter()
        try:
            module = ep.load()
        except KeyboardInterrupt:
            record.status, record.reason = "failed", f"import of {ep.value} was interrupted (KeyboardInterrupt)"
            raise PluginInterrupted(f"interrupted while importing plugin {record.label} ({ep.value})") from None
        except SystemExit as exc:  # sys.exit() at import must not end every vfp command silently
            self._fail(record, f"called sys.exit({exc.code!r}) while importing {ep.value}")
            return
        except Exception as exc:
            self._fail(record, f"failed to import {ep.value}: {type(exc).__name__}: {exc}")
            return
        finally:
            record.import_seconds = time.perf_counter() - started
            record.imports_torch = None if torch_before else "torch" in sys.modules
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
            return
        self._check_import_cost(record)

    def _check_import_cost(self, record: PluginRecord) -> None:
        """Warn about a light module that is not light: every vfp command, even ``--help``, pays for it."""
        seconds = record.import_seconds or 0.0
        threshold = self._threshold
        how = (
            "every vfp command, even `vfp --help`, pays for it. Keep the entry-point module light (config "
            "models and registration only) and move heavy imports into the modules named by the components' "
            "lazy targets ('package.module:attribute'), which vfp imports only when a component is built"
        )
        if record.imports_torch:
            self._problem(
                record, f"imports torch when its entry point {record.value} is imported ({seconds:.2f} s): {how}"
            )
        elif seconds > threshold:
            self._problem(
                record,
                f"takes {seconds:.2f} s to import its entry point {record.value} (more than {threshold:g} s, "
                f"{IMPORT_THRESHOLD_ENV}): {how}",
            )

    def _call_plugin(self, record: PluginRecord, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call one hook of one plugin only; a raising plugin is marked failed."""
        if not record.active or record.module is None:
            return []
        # pluggy registered the module's ``vfp_*`` function marked as a hook implementation; looking it up
        # on the module keeps discovery linear in the number of plugins (scanning every plugin's hook
        # implementations for each plugin is quadratic).
        function = getattr(record.module, hook_name, None)
        if function is None or self.pm.parse_hookimpl_opts(record.module, hook_name) is None:
            return []
        try:
            result = function(**kwargs)
        except SystemExit as exc:
            self._fail(record, f"called sys.exit({exc.code!r}) in hook {hook_name}")
            return []
        except Exception as exc:
            self._fail(record, f"raised in hook {hook_name}: {type(exc).__name__}: {exc}")
            return []
        return [] if result is None else [result]

    def _register_components(self, *, warn: bool = True) -> None:
        for record in self.records:
            for spec in record.components:
                self._registry.add(spec)
        by_plugin = {record.name: record for record in self.records}
        for conflict in self._registry.all_conflicts():
            for plugin in dict.fromkeys(conflict.plugins):
                record = by_plugin[plugin]
                record.conflicts.append(conflict)
                if record.status == "ok":
                    record.status = "conflict"
                    record.reason = "claims a name another plugin claims too"
            message = conflict.message()
            if self.strict:
                raise PluginError(f"{message} ({STRICT_ENV} is set)")
            if warn:
                warnings.warn(message, PluginWarning, stacklevel=3)

    # queries -------------------------------------------------------------------------------
    @property
    def active(self) -> list[PluginRecord]:
        """Plugins whose hooks are called (status ``ok`` or ``conflict``)."""
        return [r for r in self.records if r.active]

    def conflicts(self) -> list[Conflict]:
        """Every component name claimed by more than one plugin."""
        return self.registry.all_conflicts()

    def config_dirs(self) -> list[tuple[PluginRecord, Path]]:
        return [(record, folder) for record in self.active for folder in record.config_dirs]

    # callbacks of a run -------------------------------------------------------------------
    def register_object(self, obj: object, name: str) -> None:
        """Register a run-scoped hook implementer (a callback component instance)."""
        self.pm.register(obj, name=name)

    def unregister_object(self, obj: object) -> None:
        """Unregister what :meth:`register_object` registered (a no-op when it is not registered)."""
        if self.pm.is_registered(obj):
            self.pm.unregister(obj)

    # the typed facade: one method per hook -------------------------------------------------
    def on_train_start(self, run: RunInfo) -> None:
        """``vfp_on_train_start``: once before the first training step."""
        self._call_lifecycle("vfp_on_train_start", run=run)

    def on_step_end(self, run: RunInfo, step: int, metrics: Mapping[str, float]) -> None:
        """``vfp_on_step_end``: after each logged optimizer step."""
        self._call_lifecycle("vfp_on_step_end", run=run, step=step, metrics=metrics)

    def on_evaluation_end(self, run: RunInfo, step: int, metrics: Mapping[str, float]) -> None:
        """``vfp_on_evaluation_end``: after each periodic evaluation."""
        self._call_lifecycle("vfp_on_evaluation_end", run=run, step=step, metrics=metrics)

    def on_checkpoint_saved(self, run: RunInfo, step: int, path: Path) -> None:
        """``vfp_on_checkpoint_saved``: after a checkpoint was written."""
        self._call_lifecycle("vfp_on_checkpoint_saved", run=run, step=step, path=path)

    def on_train_end(self, run: RunInfo, status: RunStatus) -> None:
        """``vfp_on_train_end``: once when training stops."""
        self._call_lifecycle("vfp_on_train_end", run=run, status=status)

    def add_cli_commands(self, app: typer.Typer) -> None:
        """``vfp_add_cli_commands``: every active plugin adds its subcommands; one that raises is left out."""
        for record in self.active:
            self._call_plugin(record, "vfp_add_cli_commands", app=app)

    def _call_lifecycle(self, hook_name: LifecycleHook, **kwargs: Any) -> None:
        """The implementation behind the typed ``on_*`` methods: call them, not this.

        Calls a lifecycle hook on every implementer; one that raises (or calls ``sys.exit``) is named and
        unregistered for the rest of the run (or the error is raised in strict mode). A
        ``KeyboardInterrupt`` is not caught: it stops the run as a Ctrl-C does.
        """
        caller: pluggy.HookCaller = getattr(self.pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            try:
                impl.function(**kwargs)
            except (Exception, SystemExit) as exc:
                name = self.pm.get_name(impl.plugin) or repr(impl.plugin)
                what = f"called sys.exit({exc.code!r})" if isinstance(exc, SystemExit) else "raised"
                message = f"{name} {what} in {hook_name}: {type(exc).__name__}: {exc}"
                if self.strict:
                    raise PluginError(message) from exc
                warnings.warn(message + "; it is disabled for the rest of this run", PluginWarning, stacklevel=3)
                self.pm.unregister(impl.plugin)


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


def raised_in_validation(
    exc: BaseException, registry: ComponentRegistry, data: object
) -> tuple[tuple[str | int, ...], str]:
    """The key path and message for an exception (not a validation error) raised while validating a config.

    A config model's validator that raises something else than ``ValueError``/``AssertionError`` (a
    ``RuntimeError``, say) is a bug in its plugin; the component is found from the traceback (the
    innermost frame in a module defining a registered config model) and its section in ``data``.
    """
    by_module: dict[str, list[ComponentSpec]] = {}
    for kind in ComponentKind:
        for spec in registry.specs(kind):
            by_module.setdefault(spec.config.__module__, []).append(spec)
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    culprit: ComponentSpec | None = None
    for frame in reversed(frames):
        candidates = by_module.get(frame.f_globals.get("__name__", ""), [])
        if candidates:
            owner = getattr(frame.f_code, "co_qualname", "").rsplit(".", 1)[0]
            culprit = next((c for c in candidates if c.config.__qualname__ == owner), candidates[0])
            break
    what = f"{type(exc).__name__}: {exc}"
    if culprit is None:
        return (), f"validating the config raised {what}"
    path = _section_of(data, culprit.name, ()) or ()
    return path, (
        f"the config model of {culprit.kind} {culprit.name!r} (from {culprit.origin}) raised {what}; "
        "this is a bug in that plugin (a validator must raise ValueError for a bad value)"
    )


def _section_of(data: object, name: str, path: tuple[str | int, ...]) -> tuple[str | int, ...] | None:
    """The path of the first mapping in ``data`` whose ``type`` is ``name``."""
    if isinstance(data, dict):
        if data.get("type") == name:
            return path
        children: Iterable[tuple[str | int, object]] = data.items()
    elif isinstance(data, list):
        children = enumerate(data)
    else:
        return None
    for key, value in children:
        found = _section_of(value, name, (*path, key))
        if found is not None:
            return found
    return None


def _config_model_problem(spec: ComponentSpec, *, json_schema: bool) -> str | None:
    """Why a component's config model cannot validate (or describe, with ``json_schema``) configs.

    Builds the validator (and the JSON Schema) now, before any experiment model is built: a model with
    an unresolvable annotation or a field of a type pydantic cannot handle (``threading.Lock``) would
    otherwise break ``vfp config validate`` and ``vfp train`` for every experiment, not only the ones
    that use it; one without a JSON Schema would break ``vfp config schema``. None when it can.
    """
    model = spec.config
    try:
        if json_schema:
            model.model_json_schema()
        else:
            model.model_rebuild(raise_errors=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return (
            f"has a config model {'without a JSON Schema' if json_schema else 'that cannot be built'} "
            f"({spec.kind} {spec.name!r}, "
            f"{getattr(model, '__qualname__', model)!r}): {type(exc).__name__}: {first}"
        )
    return None


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
    """Installed plugin distributions and their versions (recorded in a run's env.json)."""
    return {r.distribution: r.version for r in host.records}
