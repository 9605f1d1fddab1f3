"""The `vfp` command line, run as a user runs it: in a subprocess of the test environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from vfp_test_support import vfp

NO_TORCH_COMMANDS = [
    ["--help"],
    ["plugins", "list"],
    ["plugins", "list", "--json"],
    ["configs", "list"],
    ["config", "validate", "sample/regression"],
    ["config", "show", "sample/regression"],
    ["config", "schema"],
]


@pytest.mark.parametrize("args", NO_TORCH_COMMANDS, ids=" ".join)
def test_light_commands_never_import_torch(args: list[str]) -> None:
    probe = (
        "import sys\n"
        "from vfp.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit as exc:\n    code = exc.code\nelse:\n    code = 0\n"
        "heavy = sorted(m for m in ('torch', 'numpy', 'h5py', 'geomloss') if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "HEAVY=\n" in result.stderr


def test_plugins_list_json_describes_every_plugin() -> None:
    result = vfp("plugins", "list", "--json")
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)["plugins"]}
    sample = plugins["sample"]
    assert (sample["distribution"], sample["version"], sample["status"]) == ("vfp-sample", "0.3.1", "ok")
    assert {"kind": "trainer", "name": "sample_regression"} in sample["components"]
    assert plugins["core"]["distribution"] == "vfp-core"
    assert {"kind": "callback", "name": "jsonl"} in plugins["core"]["components"]
    assert {"il_components", "configs"} <= set(plugins)


def test_plugins_list_table_shows_components() -> None:
    result = vfp("plugins", "list")
    assert result.returncode == 0
    assert "vfp-sample" in result.stdout
    assert "sample_huber" in result.stdout


def test_disable_plugin_option_removes_its_components() -> None:
    result = vfp("--disable-plugin", "sample", "plugins", "list", "--json")
    sample = next(p for p in json.loads(result.stdout)["plugins"] if p["name"] == "sample")
    assert (sample["status"], sample["components"]) == ("disabled", [])
    assert vfp("--disable-plugin", "sample", "config", "validate", "sample/regression").returncode == 2


def test_validate_exit_codes_and_stderr(tmp_path: Path) -> None:
    assert vfp("config", "validate", "sample/regression").returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: sample/regression\noptimizers:\n  default:\n    lr: -1\n")
    result = vfp("config", "validate", str(bad))
    assert result.returncode == 2
    assert f"{bad}:4: optimizers.default.lr: input should be greater than 0" in result.stderr
    assert result.stdout == ""


def test_validate_accepts_overrides() -> None:
    assert vfp("config", "validate", "sample/regression", "optimizers.default.lr=-1").returncode == 2
    assert vfp("config", "validate", "sample/regression", "optimizers.default.lr=1e-1").returncode == 0


def test_show_prints_the_resolved_config_with_overrides() -> None:
    result = vfp("config", "show", "sample/regression", "training.max_steps=12")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert resolved["training"]["max_steps"] == 12
    assert resolved["model"]["net"]["arch"]["type"] == "sample_linear"
    assert resolved["model"]["net"]["arch"]["hidden"] == 0
    assert resolved["checkpointing"]["keep_last"] == 3  # a default filled in
    assert "extends" not in resolved


def test_schema_covers_installed_components(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    assert vfp("config", "schema", "-o", str(out)).returncode == 0
    schema = json.loads(out.read_text())
    text = json.dumps(schema)
    assert '"const": "sample_huber"' in text
    assert '"const": "sample_regression"' in text
    assert "oneOf" in json.dumps(schema["properties"]["data"])
    assert schema["additionalProperties"] is False


def test_configs_list_json_names_packaged_experiments() -> None:
    result = vfp("configs", "list", "--json")
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["sample/regression"]["distribution"] == "vfp-sample"
    assert "sample/models/linear" not in rows


def test_new_experiment_copies_the_experiment_and_its_model_configs(tmp_path: Path) -> None:
    dest = tmp_path / "my-exp"
    result = vfp("new", "experiment", "--from", "sample/regression", str(dest))
    assert result.returncode == 0, result.stderr
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*.yaml")) == [
        "models/linear.yaml",
        "regression.yaml",
    ]
    (dest / "models" / "linear.yaml").write_text("type: sample_linear\nhidden: 5\n")
    shown = yaml.safe_load(vfp("config", "show", str(dest / "regression.yaml")).stdout)
    assert shown["model"]["net"]["arch"]["hidden"] == 5


def test_new_experiment_refuses_a_non_empty_destination(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = vfp("new", "experiment", "--from", "sample/regression", str(tmp_path))
    assert result.returncode == 2
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_version_lists_distributions() -> None:
    result = vfp("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("vfp-core 1.1.0")  # the distribution version follows the contract
    assert "vfp-sample 0.3.1 (ok)" in result.stdout


def test_shell_completion_offers_commands_and_packaged_configs() -> None:
    words = vfp(env={"_VFP_COMPLETE": "complete_bash", "COMP_WORDS": "vfp con", "COMP_CWORD": "1"})
    assert words.stdout.split() == ["config", "configs"]
    names = vfp(env={"_VFP_COMPLETE": "complete_bash", "COMP_WORDS": "vfp config validate sample/r", "COMP_CWORD": "3"})
    assert "sample/regression" in names.stdout.split()


def test_usage_errors_exit_2() -> None:
    assert vfp("config", "validate").returncode == 2
    assert vfp("no-such-command").returncode == 2
