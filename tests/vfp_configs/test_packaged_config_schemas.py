"""Every packaged YAML names its JSON Schema on its first line, and validates against it with `jsonschema`.

Convention (written by `python -m vfp._docgen`, checked by `nox -s docs`): the schemas live in
``vfp_configs/schemas/``; a packaged YAML's first line is ``# yaml-language-server: $schema=RELATIVE_PATH``:

- ``experiment.schema.json``, exactly what ``vfp config schema`` writes, for a complete experiment;
- ``experiment.partial.schema.json`` (the same, nothing required) for a file that ``extends`` another, or
  a ``_base`` file, since their sections hold only the keys they change;
- ``model.schema.json`` for a model-architecture file under ``models/``.

Every experiment, once resolved (extends, model files and defaults applied: what ``vfp config show --json``
prints), validates against the full experiment schema.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from vfp.config import load_experiment, parse_yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "packages" / "vfp-configs" / "src" / "vfp_configs"
CONFIGS = PACKAGE / "configs"
SCHEMAS = PACKAGE / "schemas"
PREFIX = "# yaml-language-server: $schema="
PROJECT = {"vfp-core", "vfp-il-components", "vfp-configs"}

YAML_FILES = sorted(p for p in CONFIGS.rglob("*") if p.suffix in (".yaml", ".yml"))
EXPERIMENTS = [
    p for p in YAML_FILES if "models" not in p.relative_to(CONFIGS).parts[:-1] and not p.name.startswith("_")
]


def _id(path: Path) -> str:
    return path.relative_to(CONFIGS).as_posix()


def _schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text(encoding="utf-8"))


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(schema: dict[str, Any], instance: object) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in _validator(schema).iter_errors(instance)
    ]


def _read(path: Path) -> Any:
    """The YAML as vfp reads it (YAML 1.2 numbers: ``1e-3`` is a float, as in editors)."""
    return parse_yaml(path.read_text(encoding="utf-8"), str(path)).data


def _named_schema(path: Path) -> Path:
    first = path.read_text(encoding="utf-8").split("\n", 1)[0]
    assert first.startswith(PREFIX), f"{_id(path)}: first line must be `{PREFIX}...`, got {first!r}"
    return (path.parent / first.removeprefix(PREFIX)).resolve()


def test_packaged_configs_are_found() -> None:
    assert len(EXPERIMENTS) >= 11
    assert len(YAML_FILES) > len(EXPERIMENTS)


@pytest.mark.parametrize("path", YAML_FILES, ids=_id)
def test_first_line_names_the_schema_for_the_file(path: Path) -> None:
    relative = path.relative_to(CONFIGS)
    data = _read(path)
    if "models" in relative.parts[:-1]:
        expected = "model.schema.json"
    elif relative.name.startswith("_") or "extends" in data:
        expected = "experiment.partial.schema.json"
    else:
        expected = "experiment.schema.json"
    assert _named_schema(path) == SCHEMAS / expected


@pytest.mark.parametrize("path", YAML_FILES, ids=_id)
def test_file_as_written_validates_against_its_schema(path: Path) -> None:
    schema = json.loads(_named_schema(path).read_text(encoding="utf-8"))
    assert _errors(schema, _read(path)) == []


@pytest.mark.parametrize("path", EXPERIMENTS, ids=_id)
def test_resolved_experiment_validates_against_the_exported_schema(path: Path) -> None:
    resolved = json.loads(json.dumps(load_experiment(path).resolved()))
    assert _errors(_schema("experiment.schema.json"), resolved) == []


def test_committed_schema_is_what_vfp_config_schema_writes(tmp_path: Path) -> None:
    others = {ep.dist.name for ep in metadata.entry_points(group="vfp") if ep.dist and ep.dist.name not in PROJECT}
    output = tmp_path / "schema.json"
    subprocess.run(
        [sys.executable, "-m", "vfp", "config", "schema", "-o", str(output)],
        check=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, "VFP_DISABLE_PLUGINS": ",".join(sorted(others))},
    )
    assert json.loads(output.read_text()) == _schema("experiment.schema.json")


def test_schemas_reject_unknown_keys_wrong_types_and_unknown_types() -> None:
    full, partial, model = (
        _schema(f) for f in ("experiment.schema.json", "experiment.partial.schema.json", "model.schema.json")
    )
    resolved = json.loads(json.dumps(load_experiment(CONFIGS / "quickstart.yaml").resolved()))

    typo = {**resolved, "data": {**resolved["data"], "horizn": 8}}
    assert any("horizn" in e for e in _errors(full, typo))
    missing = {k: v for k, v in resolved.items() if k != "trainer"}
    assert any("'trainer' is a required property" in e for e in _errors(full, missing))

    assert _errors(partial, {"extends": "./exp1.yaml", "data": {"path": "other.hdf5"}}) == []
    assert _errors(partial, {"losses": {"flow": None}, "model": {"gate": None}}) == []  # deletes inherited entries
    assert _errors(full, {**resolved, "losses": {"flow": None}}) != []
    assert _errors(partial, {"trainr": {}}) != []
    assert _errors(partial, {"training": {"max_steps": "many"}}) != []
    assert _errors(partial, {"data": {"type": "hdf5", "horizn": 8}}) != []

    assert _errors(model, {"type": "mlp", "hidden_dims": [64]}) == []
    assert _errors(model, {"type": "mlpp"}) != []
    assert _errors(model, {"type": "mlp", "hiden_dims": [64]}) != []


def test_new_experiment_copies_keep_pointing_at_the_schemas(tmp_path: Path) -> None:
    dest = tmp_path / "mine"
    result = subprocess.run(
        [sys.executable, "-m", "vfp", "new", "experiment", "--from", "naive_flow_matching_policy/exp2", str(dest)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    copies = sorted(dest.rglob("*.yaml"))
    assert len(copies) >= 4  # exp2, the exp1 it extends, the base, model files
    for copy in copies:
        schema = Path(copy.read_text(encoding="utf-8").split("\n", 1)[0].removeprefix(PREFIX))
        assert schema.is_absolute()
        assert schema.parent == SCHEMAS
        assert schema.is_file()
