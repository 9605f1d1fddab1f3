"""The plugin host: discovery, isolation of failing plugins, conflicts, contract versions."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path
from textwrap import dedent

import pytest

import vfp
from vfp import ComponentKind, ComponentLookupError, PluginError, PluginWarning, RunInfo, hookspecs
from vfp._plugins import PluginHost

GOOD = """\
import vfp
from vfp import ComponentConfig, ComponentKind, ComponentSpec, LossConfig
VFP_CONTRACT = "1.0"

class Cfg(LossConfig):
    pass

@vfp.hookimpl
def vfp_register_components():
    return [ComponentSpec(ComponentKind.LOSS, "{name}", Cfg, "{module}:Impl")]

class Impl:
    def __init__(self, config):
        self.config = config
"""


@pytest.fixture
def make_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(module: str, source: str, entry_name: str | None = None) -> EntryPoint:
        (tmp_path / f"{module}.py").write_text(dedent(source), encoding="utf-8")
        return EntryPoint(name=entry_name or module, value=module, group="vfp")

    return make


def good(make_plugin, module: str, loss_name: str) -> EntryPoint:  # type: ignore[no-untyped-def]
    return make_plugin(module, GOOD.replace("{name}", loss_name).replace("{module}", module))


def test_components_register_and_load_lazily(make_plugin) -> None:  # type: ignore[no-untyped-def]
    host = PluginHost(entry_points=[good(make_plugin, "plug_a", "huber")], strict=False)
    (record,) = host.records
    assert record.status == "ok"
    assert [(c.kind, c.name) for c in record.components] == [(ComponentKind.LOSS, "huber")]
    assert host.registry.names("loss") == ["huber"]
    assert host.registry.load("loss", "huber").__name__ == "Impl"


def test_a_plugin_that_fails_to_import_is_named_and_left_out(make_plugin) -> None:  # type: ignore[no-untyped-def]
    broken = make_plugin("plug_broken", "raise ImportError('needs libfoo')\n")
    with pytest.warns(PluginWarning, match=r"plugin 'plug_broken'.*failed to import.*needs libfoo"):
        host = PluginHost(entry_points=[broken, good(make_plugin, "plug_ok", "l1")], strict=False)
    status = {r.name: r.status for r in host.records}
    assert status == {"plug_broken": "failed", "plug_ok": "ok"}
    assert host.registry.names("loss") == ["l1"]


def test_a_plugin_whose_hook_raises_is_named_and_left_out(make_plugin) -> None:  # type: ignore[no-untyped-def]
    source = GOOD.replace("    return [", "    raise RuntimeError('boom')\n    return [")
    raising = make_plugin("plug_raises", source.replace("{name}", "x").replace("{module}", "plug_raises"))
    with pytest.warns(PluginWarning, match=r"'plug_raises'.*raised in hook vfp_register_components.*boom"):
        host = PluginHost(entry_points=[raising, good(make_plugin, "plug_ok2", "l2")], strict=False)
    record = next(r for r in host.records if r.name == "plug_raises")
    assert (record.status, record.components) == ("failed", [])
    assert host.registry.names("loss") == ["l2"]


def test_returning_something_else_than_specs_is_an_invalid_registration(make_plugin) -> None:  # type: ignore[no-untyped-def]
    source = "import vfp\nVFP_CONTRACT = '1.0'\n@vfp.hookimpl\ndef vfp_register_components():\n    return ['huber']\n"
    with pytest.warns(PluginWarning, match="invalid registration: expected vfp.ComponentSpec, got str"):
        host = PluginHost(entry_points=[make_plugin("plug_wrong", source)], strict=False)
    assert host.records[0].status == "failed"


def test_invalid_name_marks_the_plugin_failed(make_plugin) -> None:  # type: ignore[no-untyped-def]
    source = GOOD.replace('"{name}"', '"Bad-Name"').replace("{module}", "plug_badname")
    with pytest.warns(PluginWarning, match=r"raised in hook.*'Bad-Name' is not valid"):
        host = PluginHost(entry_points=[make_plugin("plug_badname", source)], strict=False)
    assert host.records[0].status == "failed"


@pytest.mark.parametrize(("declared", "reason"), [("2.0", "targets plugin contract 2.0"), (None, "declares no")])
def test_incompatible_contract_is_refused_with_supported_versions(make_plugin, declared, reason) -> None:  # type: ignore[no-untyped-def]
    source = GOOD.replace('VFP_CONTRACT = "1.0"', "" if declared is None else f'VFP_CONTRACT = "{declared}"')
    ep = make_plugin(f"plug_contract_{declared is None}", source.replace("{name}", "y").replace("{module}", "m"))
    with pytest.warns(PluginWarning, match=reason):
        host = PluginHost(entry_points=[ep], strict=False)
    assert host.records[0].status == "failed"
    assert "1.x" in (host.records[0].reason or "")


def test_disabled_plugins_are_never_imported(make_plugin, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "imported"
    a = make_plugin("plug_env_off", f"open({str(marker)!r}, 'w').close()\n")
    b = make_plugin("plug_arg_off", f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.setenv("VFP_DISABLE_PLUGINS", "plug_env_off, other")
    host = PluginHost(["plug_arg_off"], entry_points=[a, b], strict=False)
    assert [r.status for r in host.records] == ["disabled", "disabled"]
    assert not marker.exists()


def test_strict_mode_turns_failures_into_errors(make_plugin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("VFP_STRICT_PLUGINS", "1")
    broken = make_plugin("plug_strict", "raise ValueError('bad')\n")
    with pytest.raises(PluginError, match=r"plug_strict.*VFP_STRICT_PLUGINS"):
        PluginHost(entry_points=[broken])


def test_a_name_claimed_twice_is_unusable_and_names_both(make_plugin) -> None:  # type: ignore[no-untyped-def]
    eps = [good(make_plugin, "plug_one", "same"), good(make_plugin, "plug_two", "same")]
    with pytest.warns(PluginWarning, match="claimed by both"):
        host = PluginHost(entry_points=eps, strict=False)
    with pytest.raises(ComponentLookupError, match=r"plugin plug_one.*plugin plug_two"):
        host.registry.get("loss", "same")
    assert "same" not in host.registry.names("loss")


def test_unknown_name_suggests_the_closest(make_plugin) -> None:  # type: ignore[no-untyped-def]
    host = PluginHost(entry_points=[good(make_plugin, "plug_s", "sinkhorn")], strict=False)
    with pytest.raises(ComponentLookupError, match=r"did you mean 'sinkhorn'\?\); installed loss types: sinkhorn"):
        host.registry.get("loss", "sinkorn")


def test_a_raising_lifecycle_hook_is_named_and_dropped_for_the_run(make_plugin) -> None:  # type: ignore[no-untyped-def]
    import vfp

    calls: list[int] = []

    class Good:
        @vfp.hookimpl
        def vfp_on_step_end(self, run: object, step: int, metrics: dict[str, float]) -> None:
            calls.append(step)

    class Bad:
        @vfp.hookimpl
        def vfp_on_step_end(self, run: object, step: int, metrics: dict[str, float]) -> None:
            raise RuntimeError("logger down")

    host = PluginHost(entry_points=[], strict=False)
    host.register_object(Good(), "good-logger")
    host.register_object(Bad(), "bad-logger")
    run = sample_run_info(Path("unused"))
    with pytest.warns(PluginWarning, match="bad-logger raised in vfp_on_step_end.*logger down"):
        host.on_step_end(run, 1, {})
    host.on_step_end(run, 2, {})
    assert calls == [1, 2]


# --- contract 1.1 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("declared", ["1.0", "1.1"])
def test_every_1_x_contract_up_to_the_implemented_one_is_accepted(make_plugin, declared: str) -> None:  # type: ignore[no-untyped-def]
    source = GOOD.replace('VFP_CONTRACT = "1.0"', f'VFP_CONTRACT = "{declared}"')
    module = f"plug_contract_ok_{declared.replace('.', '_')}"
    host = PluginHost(entry_points=[make_plugin(module, source.replace("{name}", "z").replace("{module}", module))])
    assert (host.records[0].status, host.records[0].contract) == ("ok", declared)


def test_a_newer_contract_is_refused_naming_the_supported_versions(make_plugin) -> None:  # type: ignore[no-untyped-def]
    source = GOOD.replace('VFP_CONTRACT = "1.0"', 'VFP_CONTRACT = "2.0"')
    ep = make_plugin("plug_v2", source.replace("{name}", "w").replace("{module}", "plug_v2"))
    with pytest.warns(
        PluginWarning, match=r"targets plugin contract 2\.0.*supports contract 1\.x \(versions 1\.0, 1\.1"
    ):
        host = PluginHost(entry_points=[ep], strict=False)
    assert host.records[0].status == "failed"
    assert vfp.CONTRACT_VERSION == "1.1"


# --- the author surface ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["PluginHost", "get_host", "PluginRecord", "ComponentRegistry"])
def test_host_internals_left_the_author_surface_with_a_deprecation(name: str) -> None:
    assert name not in vfp.__all__
    with pytest.warns(DeprecationWarning, match=rf"vfp\.{name} is not part of the plugin author API.*vfp\._plugins"):
        moved = getattr(vfp, name)
    assert moved is getattr(vfp._plugins, name)


def test_the_author_surface_imports_no_torch() -> None:
    probe = "import sys\nimport vfp\nlight = set(vfp.__all__) - set(vfp._HEAVY_ON_ACCESS)\n"
    probe += "assert light <= set(dir(vfp)), light - set(dir(vfp))\n"  # none of them is loaded lazily
    probe += "values = [getattr(vfp, name) for name in light]\nprint('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout.strip()) == (0, "False"), result.stderr


# --- the typed hook facade -------------------------------------------------------------------------

SAMPLE_EXPERIMENT = (
    Path(__file__).resolve().parents[2] / "plugins/vfp-sample/src/vfp_sample/configs/sample/regression.yaml"
)


def sample_run_info(run_dir: Path) -> RunInfo:
    from vfp.config import load_experiment

    config = load_experiment(SAMPLE_EXPERIMENT).config
    return RunInfo(
        run_dir=run_dir,
        name="regression-1",
        experiment="regression",
        config_path=SAMPLE_EXPERIMENT,
        trainer_type=config.trainer.type,
        start_step=0,
        max_steps=config.training.max_steps,
        config=config,
    )


def test_every_hook_has_one_typed_facade_method_with_the_hookspec_arguments() -> None:
    specs = {name: fn for name, fn in vars(hookspecs).items() if name.startswith("vfp_") and callable(fn)}
    called_by_name = {"vfp_register_components", "vfp_config_dirs"}  # called per plugin during discovery
    for name, spec in specs.items():
        if name in called_by_name:
            continue
        method = getattr(PluginHost, name.removeprefix("vfp_"))
        assert list(inspect.signature(method).parameters)[1:] == list(inspect.signature(spec).parameters), name


def test_lifecycle_facade_passes_a_typed_run_to_callbacks(tmp_path: Path) -> None:
    seen: list[tuple[str, object]] = []

    class Callback:
        @vfp.hookimpl
        def vfp_on_train_start(self, run: RunInfo) -> None:
            seen.append(("start", (run.trainer_type, run.max_steps, run.config.seed, run.is_main, run.world_size)))

        @vfp.hookimpl
        def vfp_on_step_end(self, run: RunInfo, step: int, metrics: dict[str, float]) -> None:
            seen.append(("step", (step, dict(metrics))))

        @vfp.hookimpl
        def vfp_on_evaluation_end(self, run: RunInfo, step: int, metrics: dict[str, float]) -> None:
            seen.append(("eval", (step, dict(metrics))))

        @vfp.hookimpl
        def vfp_on_checkpoint_saved(self, run: RunInfo, step: int, path: Path) -> None:
            seen.append(("checkpoint", (step, path.name)))

        @vfp.hookimpl
        def vfp_on_train_end(self, run: RunInfo, status: str) -> None:
            seen.append(("end", (run.name, status)))

    host = PluginHost(entry_points=[], strict=True)
    callback = Callback()
    host.register_object(callback, "callback")
    run = sample_run_info(tmp_path)
    host.on_train_start(run)
    host.on_step_end(run, 1, {"loss": 0.5})
    host.on_evaluation_end(run, 1, {"mae": 0.1})
    host.on_checkpoint_saved(run, 1, tmp_path / "step_1.pt")
    host.on_train_end(run, "completed")
    host.unregister_object(callback)
    host.on_step_end(run, 2, {})
    assert seen == [
        ("start", ("sample_regression", 50, 0, True, 1)),
        ("step", (1, {"loss": 0.5})),
        ("eval", (1, {"mae": 0.1})),
        ("checkpoint", (1, "step_1.pt")),
        ("end", ("regression-1", "completed")),
    ]


def test_run_info_is_frozen() -> None:
    run = sample_run_info(Path("runs/x"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.start_step = 3  # type: ignore[misc]
    assert not run.resumed
    assert dataclasses.replace(run, start_step=10).resumed


# --- conflicts -------------------------------------------------------------------------------------


def test_a_conflict_marks_both_plugins_and_names_both_ways_out(make_plugin) -> None:  # type: ignore[no-untyped-def]
    eps = [good(make_plugin, "plug_alpha", "clash"), good(make_plugin, "plug_beta", "clash")]
    with pytest.warns(PluginWarning, match="claimed by both"):
        host = PluginHost(entry_points=eps, strict=False)
    assert [(r.name, r.status) for r in host.records] == [("plug_alpha", "conflict"), ("plug_beta", "conflict")]
    (conflict,) = host.conflicts()
    assert (conflict.kind, conflict.name, conflict.plugins) == (
        ComponentKind.LOSS,
        "clash",
        ["plug_alpha", "plug_beta"],
    )
    message = conflict.message()
    for plugin in ("plug_alpha", "plug_beta"):
        assert f"disable plugin {plugin!r} (--disable-plugin {plugin} or VFP_DISABLE_PLUGINS={plugin})" in message
    assert message.endswith("or uninstall one of them")  # entry points without a distribution here
    as_json = host.records[0].as_json()
    assert as_json["conflicts"][0]["claimed_by"] == [
        {"plugin": "plug_alpha", "distribution": "?"},
        {"plugin": "plug_beta", "distribution": "?"},
    ]
    # a plugin in conflict still works for its other names, and its hooks are still called
    assert [r.name for r in host.active] == ["plug_alpha", "plug_beta"]


def test_strict_mode_fails_on_a_conflict(make_plugin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("VFP_STRICT_PLUGINS", "1")
    eps = [good(make_plugin, "plug_s1", "twice"), good(make_plugin, "plug_s2", "twice")]
    with pytest.raises(PluginError, match=r"claimed by both.*VFP_STRICT_PLUGINS is set"):
        PluginHost(entry_points=eps)


# --- import cost -----------------------------------------------------------------------------------


def test_import_time_is_measured_and_a_slow_plugin_is_flagged(make_plugin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("VFP_PLUGIN_IMPORT_THRESHOLD", "0.05")
    slow = make_plugin(
        "plug_slow",
        "import time\ntime.sleep(0.2)\n" + GOOD.replace("{name}", "slow_loss").replace("{module}", "plug_slow"),
    )
    fast = good(make_plugin, "plug_fast", "fast_loss")
    with pytest.warns(PluginWarning, match=r"'plug_slow'.*takes 0\.\d\d s to import.*more than 0\.05 s.*lazy targets"):
        host = PluginHost(entry_points=[slow, fast], strict=False)
    records = {r.name: r for r in host.records}
    assert records["plug_slow"].import_seconds is not None
    assert records["plug_slow"].import_seconds >= 0.2
    assert records["plug_slow"].status == "ok"
    assert records["plug_slow"].problems
    assert records["plug_fast"].import_seconds is not None
    assert not records["plug_fast"].problems
    assert "slow_loss" in host.registry.names("loss")  # flagged, not left out
    monkeypatch.setenv("VFP_STRICT_PLUGINS", "1")
    slow_again = make_plugin(
        "plug_slow2",
        "import time\ntime.sleep(0.2)\n" + GOOD.replace("{name}", "slow_loss").replace("{module}", "plug_slow2"),
    )
    with pytest.raises(PluginError, match=r"plug_slow2.*takes.*VFP_STRICT_PLUGINS is set"):
        PluginHost(entry_points=[slow_again])


def install_throwaway_plugin(site: Path, dist: str, entry: str, source: str) -> dict[str, str]:
    """A plugin installed as pip would (module + dist-info with entry points) on a PYTHONPATH folder."""
    module = dist.replace("-", "_")
    (site / f"{module}.py").write_text(dedent(source), encoding="utf-8")
    info = site / f"{module}-1.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[vfp]\n{entry} = {module}\n", encoding="utf-8")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def vfp_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vfp", *args], capture_output=True, text=True, env=env, check=False)


HEAVY = """\
import torch  # the mistake: a light module that imports torch
import vfp
VFP_CONTRACT = "1.1"
"""


def test_a_plugin_whose_light_module_imports_torch_is_flagged(tmp_path: Path) -> None:
    env = install_throwaway_plugin(tmp_path, "vfp-heavy", "heavy", HEAVY)
    result = vfp_cli("plugins", "list", "--json", env=env)
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)["plugins"]}
    heavy = plugins["heavy"]
    assert (heavy["status"], heavy["imports_torch"]) == ("ok", True)
    assert heavy["import_seconds"] > 0
    assert "imports torch" in heavy["problems"][0]
    assert plugins["il_components"]["imports_torch"] in (False, None)  # None: after heavy, torch is loaded
    assert "plugin 'heavy' (vfp-heavy 1.0.0) imports torch" in result.stderr
    assert "move heavy imports into the modules named by the components' lazy targets" in result.stderr
    table = vfp_cli("plugins", "list", env={**env, "COLUMNS": "200"})
    assert "imports torch" in table.stdout
    strict = vfp_cli("plugins", "list", env={**env, "VFP_STRICT_PLUGINS": "1"})
    assert strict.returncode == 1
    assert "imports torch" in strict.stderr
    assert "VFP_STRICT_PLUGINS is set" in strict.stderr


DUPE = """\
import vfp
from vfp import ComponentKind, ComponentSpec, LossConfig
VFP_CONTRACT = "1.1"

class Cfg(LossConfig):
    pass

@vfp.hookimpl
def vfp_register_components():
    return [ComponentSpec(ComponentKind.LOSS, "l2", Cfg, "vfp_dupe_l2:Cfg")]
"""


def test_plugins_list_shows_a_conflict_in_the_table_and_the_json(tmp_path: Path) -> None:
    env = install_throwaway_plugin(tmp_path, "vfp-dupe-l2", "dupe_l2", DUPE)
    result = vfp_cli("plugins", "list", "--json", env=env)
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    plugins = {p["name"]: p for p in listing["plugins"]}
    assert plugins["dupe_l2"]["status"] == plugins["il_components"]["status"] == "conflict"
    assert plugins["sample"]["status"] == "ok"
    (conflict,) = listing["conflicts"]
    assert (conflict["kind"], conflict["name"]) == ("loss", "l2")
    assert {c["plugin"] for c in conflict["claimed_by"]} == {"dupe_l2", "il_components"}
    assert plugins["dupe_l2"]["conflicts"] == plugins["il_components"]["conflicts"] == [conflict]
    # both ways out, not only the plugin that sorts second (here the built-in il_components)
    assert "disable plugin 'dupe_l2'" in conflict["message"]
    assert "disable plugin 'il_components'" in conflict["message"]
    table = vfp_cli("plugins", "list", env={**env, "COLUMNS": "250"})
    assert "conflict" in table.stdout
    assert "also claimed by 'il_components'" in table.stdout
    assert "conflict: loss 'l2' is claimed by both" in " ".join(table.stdout.split())


NO_JSON_SCHEMA = """\
from collections.abc import Callable

import vfp
from vfp import ComponentKind, ComponentSpec, LossConfig
VFP_CONTRACT = "1.1"

class Cfg(LossConfig):
    hook: Callable[[int], int] = abs

@vfp.hookimpl
def vfp_register_components():
    return [ComponentSpec(ComponentKind.LOSS, "callable_loss", Cfg, "plug_callable:Cfg")]
"""


def test_a_model_without_json_schema_works_but_is_left_out_of_the_schema(make_plugin) -> None:  # type: ignore[no-untyped-def]
    """Validators are checked for every command that needs components; JSON Schemas only where one is written."""
    ep = make_plugin("plug_callable", NO_JSON_SCHEMA)
    host = PluginHost(entry_points=[ep, good(make_plugin, "plug_fine", "l3")], strict=False)
    assert host.registry.names("loss") == ["callable_loss", "l3"]
    assert host.registry.get("loss", "callable_loss").config(type="callable_loss").hook(-2) == 2
    assert host.records[0].status == "ok"
    with pytest.warns(
        PluginWarning, match=r"plugin 'plug_callable'.*config model without a JSON Schema.*callable_loss"
    ):
        schema_registry = host.schema_registry
    assert schema_registry.names("loss") == ["l3"]
    assert host.registry is schema_registry  # from now on every command sees it left out
    assert host.records[0].status == "failed"


def test_hooks_are_called_only_when_marked_as_hook_implementations(make_plugin) -> None:  # type: ignore[no-untyped-def]
    """A ``vfp_*`` function without ``@vfp.hookimpl`` is not a hook: pluggy skips it, and so does discovery."""
    source = GOOD.replace("@vfp.hookimpl\n", "").replace("{name}", "unmarked").replace("{module}", "plug_unmarked")
    host = PluginHost(entry_points=[make_plugin("plug_unmarked", source)], strict=False)
    assert (host.records[0].status, host.records[0].components) == ("ok", [])
    assert host.registry.names("loss") == []
