"""`vfp new plugin`: a scaffold for every kind that installs, lists, validates and trains at once.

The fast tests put the generated package on PYTHONPATH with a dist-info folder (what pip writes), so
that vfp discovers it by its entry point without a virtual environment; the slow test
(tests/vfp_core/plugins/test_plugin_packages.py) installs it from a wheel into a fresh one and runs its own tests.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vfp.cli._scaffold import DEFAULT_KINDS, KINDS, ScaffoldNames, version_range


def vfp(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vfp", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=False,
    )


def scaffold(tmp_path: Path, dist: str, *kinds: str) -> tuple[Path, dict[str, str]]:
    """Generate ``dist`` with ``kinds`` and make it discoverable; return its folder and the environment."""
    dest = tmp_path / dist
    result = vfp("new", "plugin", dist, str(dest), *[arg for kind in kinds for arg in ("--kind", kind)])
    assert result.returncode == 0, result.stderr
    names = ScaffoldNames.from_distribution(dist)
    info = tmp_path / "site" / f"{names.module}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[vfp]\n{names.entry} = {names.module}.plugin\n", encoding="utf-8")
    path = os.pathsep.join([str(tmp_path / "site"), str(dest / "src"), os.environ.get("PYTHONPATH", "")])
    return dest, {"PYTHONPATH": path}


def listed(env: dict[str, str], entry: str) -> dict:  # type: ignore[type-arg]
    result = vfp("plugins", "list", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return {p["name"]: p for p in json.loads(result.stdout)["plugins"]}[entry]


def test_default_scaffold_is_a_complete_training_stack(tmp_path: Path) -> None:
    dest, env = scaffold(tmp_path, "vfp-foo")
    plugin = listed(env, "foo")
    assert (plugin["status"], plugin["problems"], plugin["imports_torch"]) == ("ok", [], False)
    assert {(c["kind"], c["name"]) for c in plugin["components"]} == {
        ("dataloader", "foo_toy"),
        ("model", "foo_mlp"),
        ("loss", "foo_l1"),
        ("trainer", "foo_bc"),
    }
    assert set(DEFAULT_KINDS) == {"trainer", "loss", "dataloader", "model"}
    pyproject = (dest / "pyproject.toml").read_text()
    assert '"vfp-core>=1.1,<2"' in pyproject
    assert '"vfp-il-components>=' in pyproject  # its optimizer is borrowed by the packaged experiment
    assert '[project.entry-points.vfp]\nfoo = "vfp_foo.plugin"' in pyproject
    configs = json.loads(vfp("configs", "list", "--json", env=env).stdout)
    assert "foo/quickstart" in {entry["name"] for entry in configs}
    assert vfp("config", "validate", "foo/quickstart", env=env).returncode == 0


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_alone_gives_a_valid_packaged_experiment(tmp_path: Path, kind: str) -> None:
    dist = f"vfp-only-{kind}"
    dest, env = scaffold(tmp_path, dist, kind)
    entry = ScaffoldNames.from_distribution(dist).entry
    plugin = listed(env, entry)
    assert (plugin["status"], plugin["problems"]) == ("ok", [])
    result = vfp("config", "validate", f"{entry}/quickstart", env=env)
    assert result.returncode == 0, result.stderr
    for source in dest.rglob("*.py"):
        ast.parse(source.read_text(), filename=str(source))  # every generated module is valid Python


def test_a_loss_comes_with_the_trainer_that_calls_it(tmp_path: Path) -> None:
    result = vfp("new", "plugin", "vfp-bar", str(tmp_path / "bar"), "--kind", "loss")
    assert result.returncode == 0, result.stderr
    assert "added --kind trainer" in result.stderr
    experiment = (tmp_path / "bar/src/vfp_bar/configs/bar/quickstart.yaml").read_text()
    assert "type: bar_l1" in experiment
    assert "type: bar_bc" in experiment


def test_the_generated_loss_follows_the_loss_call_convention(tmp_path: Path) -> None:
    """``loss(pred, target, is_pad)``, as vfp's trainers call every loss; padded steps are left out."""
    import torch

    dest, _ = scaffold(tmp_path, "vfp-conv", "loss")
    sys.path.insert(0, str(dest / "src"))
    try:
        from vfp_conv.losses import L1Loss  # type: ignore[import-not-found]
        from vfp_conv.plugin import L1LossConfig  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(dest / "src"))
    loss = L1Loss(L1LossConfig(type="conv_l1", weight=0.5))
    pred, target = torch.zeros(2, 3, 2), torch.ones(2, 3, 2)
    is_pad = torch.zeros(2, 3, dtype=torch.bool)
    is_pad[:, -1] = True
    target[:, -1] = 1000.0
    assert float(loss(pred, target, is_pad)) == pytest.approx(0.5)
    assert float(loss(pred, torch.ones(2, 3, 2))) == pytest.approx(0.5)


def test_every_kind_at_once_and_comma_separated(tmp_path: Path) -> None:
    dest, env = scaffold(tmp_path, "vfp-all", ",".join(KINDS))
    plugin = listed(env, "all")
    assert {c["kind"] for c in plugin["components"]} == {"dataloader", "model", "loss", "trainer", "callback"}
    experiment = (dest / "src/vfp_all/configs/all/quickstart.yaml").read_text()
    assert "{type: all_csv}" in experiment
    result = vfp("all", "info", env=env)
    assert result.returncode == 0, result.stderr
    assert "callback: all_csv" in result.stdout


def test_unknown_kind_and_bad_names_are_usage_errors(tmp_path: Path) -> None:
    result = vfp("new", "plugin", "vfp-x", str(tmp_path / "x"), "--kind", "optimiser")
    assert result.returncode == 2
    assert "unknown --kind optimiser; choose from trainer, loss, dataloader, model, callback, command" in result.stderr
    assert vfp("new", "plugin", "Vfp_X", str(tmp_path / "y")).returncode == 2
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("version", "expected"),
    [("1.1.0", ">=1.1,<2"), ("1.1", ">=1.1,<2"), ("0.1.0", ">=0.1,<0.2"), ("2.3.1", ">=2.3,<3")],
)
def test_dependency_ranges(version: str, expected: str) -> None:
    assert version_range(version) == expected
