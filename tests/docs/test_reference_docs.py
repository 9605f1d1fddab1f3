"""The generated references (docs/reference/, the packaged configs' JSON Schemas and `$schema` lines)
equal what `python -m vfp._docgen` makes from the code, and the check fails, with a diff, when they drift."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from vfp import hookspecs

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference"
PROJECT = {"vfp-core", "vfp-il-components", "vfp-configs"}


def _docgen(*args: str, root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vfp._docgen", "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "FORCE_COLOR": "1", "COLUMNS": "37"},  # the generator must override both
    )


def test_committed_references_match_the_code() -> None:
    result = _docgen("--check")
    assert result.returncode == 0, (
        "generated docs differ from the code; run `python -m vfp._docgen` from the repository root and commit:\n"
        + result.stdout[-6000:]
        + result.stderr[-2000:]
    )


def test_generation_imports_no_torch(tmp_path: Path) -> None:
    code = (
        "import sys; from vfp._docgen import main; rc = main(sys.argv[1:]); "
        "sys.exit(3 if 'torch' in sys.modules else rc)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "--root", str(ROOT), "--check", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 3, "generating the docs imported torch"
    assert (tmp_path / "docs" / "reference" / "hooks.md").is_file()


def test_check_fails_with_a_diff_when_a_reference_drifts(tmp_path: Path) -> None:
    configs = Path("packages/vfp-configs/src/vfp_configs")
    shutil.copytree(ROOT / "docs" / "reference", tmp_path / "docs" / "reference")
    shutil.copytree(ROOT / configs / "configs", tmp_path / configs / "configs")
    shutil.copytree(ROOT / configs / "schemas", tmp_path / configs / "schemas")
    cli = tmp_path / "docs" / "reference" / "cli.md"
    cli.write_text(cli.read_text().replace("## vfp config schema", "## vfp config schemata"))
    quickstart = tmp_path / configs / "configs" / "quickstart.yaml"
    quickstart.write_text(quickstart.read_text().split("\n", 1)[1])  # the `$schema` line removed

    result = _docgen("--check", "--out", str(tmp_path / "generated"), root=tmp_path)

    assert result.returncode == 1
    assert "-## vfp config schemata" in result.stdout
    assert "+## vfp config schema" in result.stdout
    assert "+# yaml-language-server: $schema=../schemas/experiment.partial.schema.json" in result.stdout
    assert "2 generated file(s) differ" in result.stderr
    assert (tmp_path / "generated" / "docs" / "reference" / "cli.md").read_text() == (REFERENCE / "cli.md").read_text()


def test_writing_regenerates_what_the_check_compares(tmp_path: Path) -> None:
    shutil.copytree(
        ROOT / "packages/vfp-configs/src/vfp_configs/configs", tmp_path / "packages/vfp-configs/src/vfp_configs/configs"
    )
    assert _docgen(root=tmp_path).returncode == 0
    assert _docgen("--check", root=tmp_path).returncode == 0
    for name in ("hooks.md", "config.md", "cli.md"):
        assert (tmp_path / "docs" / "reference" / name).read_text() == (REFERENCE / name).read_text()


def test_hook_reference_lists_every_hookspec() -> None:
    text = (REFERENCE / "hooks.md").read_text()
    hooks = [
        name for name in vars(hookspecs) if name.startswith("vfp_") and hasattr(getattr(hookspecs, name), "vfp_spec")
    ]
    assert len(hooks) >= 8
    for name in hooks:
        assert f"## {name}\n" in text
        assert f"def {name}(" in text


def test_config_reference_documents_every_component_of_the_project() -> None:
    listing = subprocess.run(
        [sys.executable, "-m", "vfp", "plugins", "list", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    plugins = json.loads(listing.stdout)
    records = plugins if isinstance(plugins, list) else plugins["plugins"]
    components = [
        (component["kind"], component["name"])
        for record in records
        if record["distribution"] in PROJECT
        for component in record["components"]
    ]
    text = (REFERENCE / "config.md").read_text()
    assert len(components) >= 20
    for kind, name in components:
        assert f"### {kind}: {name}\n" in text


def test_config_reference_gives_each_field_its_type_default_and_description() -> None:
    text = (REFERENCE / "config.md").read_text()
    hdf5 = text.split("### dataloader: hdf5\n", 1)[1].split("\n### ", 1)[0]
    assert "| `horizon` | int (≥ 1, ≤ 10000) | `16` | Actions per sample" in hdf5
    assert "| `path` | str | required |" in hdf5
    assert "| `max_steps` | int (≥ 1) | `1000` |" in text


def test_cli_reference_has_every_command_without_terminal_effects() -> None:
    text = (REFERENCE / "cli.md").read_text()
    for command in (
        "vfp",
        "vfp train",
        "vfp config validate",
        "vfp config schema",
        "vfp configs list",
        "vfp data demo",
    ):
        assert f"\n## {command}\n" in text
    assert "\x1b[" not in text
    blocks = [line for line in text.splitlines() if line.startswith(("╭", "│", "╰"))]
    assert blocks
    assert {len(line) for line in blocks} == {100}


@pytest.mark.parametrize("dist", sorted(PROJECT))
def test_project_distributions_are_installed(dist: str) -> None:
    """The generator documents these three; a missing one would silently shrink the references."""
    assert metadata.distribution(dist).version
