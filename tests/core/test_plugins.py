"""The plugin host: discovery, isolation of failing plugins, conflicts, contract versions."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path
from textwrap import dedent

import pytest

from vfp import ComponentKind, ComponentLookupError, PluginError, PluginHost, PluginWarning

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
    with pytest.warns(PluginWarning, match="bad-logger raised in vfp_on_step_end.*logger down"):
        host.call_lifecycle("vfp_on_step_end", run=None, step=1, metrics={})
    host.call_lifecycle("vfp_on_step_end", run=None, step=2, metrics={})
    assert calls == [1, 2]
