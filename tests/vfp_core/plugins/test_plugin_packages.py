"""Plugin packages installed from wheels into a fresh virtual environment (slow).

- A plugin written against contract 1.0 and frozen (tests/plugins/vfp-legacy-1_0) keeps working
  with this vfp-core: it is listed, its experiment validates and trains, and its 1.0 callback reads
  the run context it was written for.
- The scaffold of `vfp new plugin` with every kind installs with the dependency ranges it declares,
  and its own tests (which train its packaged experiment) pass there.

One environment serves both, to keep the time down (torch comes from the local wheel).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fresh_venv import PROJECT_PACKAGES, ROOT, FreshVenv, build_wheels

from vfp.cli._scaffold import KINDS

pytestmark = pytest.mark.slow

LEGACY_PLUGIN = ROOT / "tests" / "plugins" / "vfp-legacy-1_0"


@pytest.fixture(scope="module")
def plugin_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[FreshVenv, Path]:
    work = tmp_path_factory.mktemp("plugin-packages")
    scaffold = work / "vfp-everything"
    kinds = [arg for kind in KINDS for arg in ("--kind", kind)]
    subprocess.run([sys.executable, "-m", "vfp", "new", "plugin", "vfp-everything", str(scaffold), *kinds], check=True)
    wheels = build_wheels([*PROJECT_PACKAGES, LEGACY_PLUGIN, scaffold], work / "dist")
    return FreshVenv.create(work / "venv", [*wheels, "pytest>=8"]), scaffold


def test_a_frozen_contract_1_0_plugin_is_listed_and_trains(plugin_venv: tuple[FreshVenv, Path], tmp_path: Path) -> None:
    env, _ = plugin_venv
    listing = env.run("vfp", "plugins", "list", "--json")
    assert listing.returncode == 0, listing.stderr
    legacy = {p["name"]: p for p in json.loads(listing.stdout)["plugins"]}["legacy"]
    assert (legacy["distribution"], legacy["contract"], legacy["status"], legacy["problems"]) == (
        "vfp-legacy",
        "1.0",
        "ok",
        [],
    )
    assert env.run("vfp", "config", "validate", "legacy/regression").returncode == 0
    run_dir = tmp_path / "run"
    trained = env.run("vfp", "train", "legacy/regression", "--max-steps", "10", "--run-dir", str(run_dir), cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "plugin warning" not in trained.stderr
    assert "raised in" not in trained.stderr  # its callback was not dropped
    probe = json.loads((run_dir / "legacy_probe.json").read_text())
    assert probe["start"] == {"start_step": 0, "max_steps": 10, "is_main": True}
    assert (probe["last_step"], probe["run_step"]) == (10, 10)
    assert probe["end"]["status"] == "completed"
    assert probe["end"]["models"] == ["net"]
    assert probe["end"]["optimizers"] == ["default"]
    assert probe["end"]["trainer"] == "RegressionTrainer"
    assert probe["end"]["parameters"] == 4 * 2 + 2  # the linear net of the experiment
    assert (probe["end"]["rank"], probe["end"]["world_size"]) == (0, 1)


def test_the_1_0_host_names_still_work_with_a_deprecation(plugin_venv: tuple[FreshVenv, Path]) -> None:
    env, _ = plugin_venv
    script = "from vfp import PluginHost\nprint(PluginHost().registry.names('loss'))\n"
    result = env.run("python", "-W", "always::DeprecationWarning", "-c", script)
    assert result.returncode == 0, result.stderr
    assert "legacy_huber" in result.stdout
    assert "DeprecationWarning: vfp.PluginHost is not part of the plugin author API" in result.stderr


def test_the_scaffold_with_every_kind_passes_its_own_tests(plugin_venv: tuple[FreshVenv, Path]) -> None:
    env, scaffold = plugin_venv
    listing = env.run("vfp", "plugins", "list", "--json")
    plugin = {p["name"]: p for p in json.loads(listing.stdout)["plugins"]}["everything"]
    assert (plugin["status"], plugin["problems"]) == ("ok", [])
    result = env.run("pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=scaffold)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout
