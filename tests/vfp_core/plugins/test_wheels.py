"""End to end as a user installs it: real wheels in a fresh virtual environment.

The project's three wheels, the sample third-party plugin and four misbehaving plugins are built
and installed together; a broken plugin must never take the others down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path
from textwrap import dedent

import pytest

ROOT = Path(__file__).resolve().parents[3]
PROJECT_PACKAGES = [ROOT / "packages" / name for name in ("vfp-core", "vfp-configs", "vfp-il-components")]
SAMPLE_PLUGIN = ROOT / "tests" / "plugins" / "vfp-sample"

pytestmark = pytest.mark.slow

PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "{dist}"
version = "1.0.0"
dependencies = ["vfp-core"]

[project.entry-points.vfp]
{entry} = "{module}"

[tool.hatch.build.targets.wheel]
packages = ["{module}"]
"""

SPEC_PLUGIN = """\
import vfp
from vfp import ComponentKind, ComponentSpec, LossConfig
VFP_CONTRACT = "{contract}"

class Cfg(LossConfig):
    pass

@vfp.hookimpl
def vfp_register_components():
    {body}
    return [ComponentSpec(ComponentKind.LOSS, "{loss}", Cfg, "{module}:Cfg")]
"""

BAD_PLUGINS = {
    # distribution: (entry-point name, module source)
    "vfp-broken-import": ("broken_import", "raise ImportError('this plugin needs libmissing')\n"),
    "vfp-broken-hook": (
        "broken_hook",
        SPEC_PLUGIN.format(contract="1.0", body="raise RuntimeError('hook exploded')", loss="x", module="m"),
    ),
    "vfp-dupe": ("dupe", SPEC_PLUGIN.format(contract="1.0", body="pass", loss="sample_huber", module="vfp_dupe")),
    "vfp-future": ("future", SPEC_PLUGIN.format(contract="2.0", body="pass", loss="future_loss", module="vfp_future")),
}


def _write_plugin(folder: Path, dist: str, entry: str, source: str) -> Path:
    module = dist.replace("-", "_")
    package = folder / dist
    (package / module).mkdir(parents=True)
    (package / module / "__init__.py").write_text(dedent(source), encoding="utf-8")
    (package / "pyproject.toml").write_text(PYPROJECT.format(dist=dist, entry=entry, module=module), encoding="utf-8")
    return package


@dataclass
class FreshVenv:
    path: Path

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("VFP_", "PYTHON"))}
        return subprocess.run(
            [str(self.path / "bin" / "vfp"), *args],
            capture_output=True,
            text=True,
            env={**clean, **(env or {})},
            check=False,
        )

    def plugins(self, env: dict[str, str] | None = None) -> dict[str, dict]:  # type: ignore[type-arg]
        result = self.run("plugins", "list", "--json", env=env)
        assert result.returncode == 0, result.stderr
        return {p["name"]: p for p in json.loads(result.stdout)["plugins"]}


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> FreshVenv:
    work = tmp_path_factory.mktemp("wheels")
    sources = [*PROJECT_PACKAGES, SAMPLE_PLUGIN]
    sources += [_write_plugin(work / "src", dist, entry, src) for dist, (entry, src) in BAD_PLUGINS.items()]
    scaffold = work / "src" / "vfp-scaffolded"
    subprocess.run([sys.executable, "-m", "vfp", "new", "plugin", "vfp-scaffolded", str(scaffold)], check=True)
    sources.append(scaffold)
    dist = work / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            *map(str, sources),
        ],
        check=True,
    )
    wheels = sorted(dist.glob("*.whl"))
    assert len(wheels) == len(sources)
    env_dir = work / "venv"
    venv.create(env_dir, with_pip=True, clear=True)
    subprocess.run(
        [str(env_dir / "bin" / "pip"), "install", "-q", "-c", str(ROOT / "constraints.txt"), *map(str, wheels)],
        check=True,
    )
    return FreshVenv(env_dir)


def test_project_wheels_give_a_working_vfp_with_all_plugins(fresh_venv: FreshVenv) -> None:
    plugins = fresh_venv.plugins()
    for name, dist in [("core", "vfp-core"), ("configs", "vfp-configs"), ("il_components", "vfp-il-components")]:
        assert (plugins[name]["distribution"], plugins[name]["status"]) == (dist, "ok")


def test_third_party_plugin_is_listed_and_its_yaml_validates(fresh_venv: FreshVenv) -> None:
    sample = fresh_venv.plugins()["sample"]
    # vfp-dupe claims sample_huber too, so both plugins show the conflict.
    assert (sample["distribution"], sample["version"], sample["status"]) == ("vfp-sample", "0.3.1", "conflict")
    assert {"kind": "optimizer", "name": "sample_sgd"} in sample["components"]
    # vfp-dupe claims sample_huber too; with it disabled the sample experiment validates.
    result = fresh_venv.run("config", "validate", "sample/regression", env={"VFP_DISABLE_PLUGINS": "dupe"})
    assert result.returncode == 0, result.stderr


def test_plugin_that_raises_on_import_is_named_and_isolated(fresh_venv: FreshVenv) -> None:
    result = fresh_venv.run("plugins", "list", "--json")
    broken = {p["name"]: p for p in json.loads(result.stdout)["plugins"]}["broken_import"]
    assert broken["status"] == "failed"
    assert "this plugin needs libmissing" in broken["reason"]
    assert "plugin 'broken_import' (vfp-broken-import 1.0.0) failed to import" in result.stderr


def test_plugin_whose_hook_raises_is_named_and_isolated(fresh_venv: FreshVenv) -> None:
    hook = fresh_venv.plugins()["broken_hook"]
    assert (hook["status"], hook["components"]) == ("failed", [])
    assert "raised in hook vfp_register_components: RuntimeError: hook exploded" in hook["reason"]


def test_name_claimed_twice_names_both_distributions(fresh_venv: FreshVenv) -> None:
    result = fresh_venv.run("config", "validate", "sample/regression")
    assert result.returncode == 2
    assert (
        "loss 'sample_huber' is claimed by both vfp-dupe (plugin dupe) and vfp-sample (plugin sample)" in result.stderr
    )


def test_incompatible_contract_is_refused(fresh_venv: FreshVenv) -> None:
    future = fresh_venv.plugins()["future"]
    assert future["status"] == "failed"
    assert "targets plugin contract 2.0, but vfp-core supports contract 1.x" in future["reason"]


def test_plugin_disabled_by_environment_is_skipped(fresh_venv: FreshVenv) -> None:
    plugins = fresh_venv.plugins(env={"VFP_DISABLE_PLUGINS": "broken_import,vfp-broken-hook"})
    assert plugins["broken_import"]["status"] == "disabled"
    assert plugins["broken_hook"]["status"] == "disabled"
    assert plugins["sample"]["status"] == "conflict"  # still loaded: vfp-dupe claims one of its names


def test_strict_mode_makes_plugin_failures_fatal(fresh_venv: FreshVenv) -> None:
    result = fresh_venv.run("plugins", "list", env={"VFP_STRICT_PLUGINS": "1"})
    assert result.returncode == 1
    assert "VFP_STRICT_PLUGINS is set" in result.stderr


def test_scaffolded_plugin_works_at_once(fresh_venv: FreshVenv) -> None:
    scaffolded = fresh_venv.plugins()["scaffolded"]
    assert scaffolded["status"] == "ok"
    assert {"kind": "loss", "name": "scaffolded_l1"} in scaffolded["components"]
    result = fresh_venv.run(
        "config",
        "validate",
        "sample/regression",
        "losses.fit={type: scaffolded_l1, weight: 0.5}",
        env={"VFP_DISABLE_PLUGINS": "dupe"},
    )
    assert result.returncode == 0, result.stderr
