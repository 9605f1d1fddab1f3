"""Experiment configs: validation against installed components, errors, composition, overrides.

These use the vfp-sample plugin (tests/plugins/vfp-sample), installed in the test environment.
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest
from vfp_test_support import config_problems

from vfp.config import ConfigError, load_experiment

BASE = """\
data:
  type: sample_regression
  batch_size: 16
model:
  net:
    arch: {type: sample_linear, hidden: 8}
losses:
  fit: {type: sample_huber}
optimizers:
  default: {type: sample_sgd, lr: 1e-3}
trainer:
  type: sample_regression
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text), encoding="utf-8")
    return path


problems = config_problems


def test_valid_config_fills_in_defaults(tmp_path: Path) -> None:
    config = load_experiment(write(tmp_path, "exp.yaml", BASE)).config
    assert config.optimizers["default"].lr == pytest.approx(1e-3)  # type: ignore[attr-defined]
    assert isinstance(config.optimizers["default"].lr, float)  # type: ignore[attr-defined]
    assert config.training.max_steps == 1000
    assert config.model["net"].arch.hidden == 8  # type: ignore[attr-defined]
    assert [cb.type for cb in config.logging.callbacks] == ["jsonl", "tensorboard"]


def test_all_errors_of_a_file_are_reported_at_once_with_lines(tmp_path: Path) -> None:
    text = BASE.replace("batch_size: 16", "batch_size: many\n  shuffle: true").replace(
        "type: sample_regression\n", "type: sample_regresion\n", 1
    )
    text += "precision: fp64\ntraining:\n  max_steps: 0\n"
    found = problems(write(tmp_path, "bad.yaml", text))
    assert set(found) == {"data.type", "precision", "training.max_steps"}
    line, message = found["data.type"]
    assert line == 2
    assert "unknown dataloader type 'sample_regresion'" in message
    assert "did you mean 'sample_regression'" in message
    assert "installed dataloader types: " in message
    assert "sample_regression" in message.split("installed dataloader types: ")[1]
    assert found["precision"][0] == 14
    assert "'fp32', 'bf16' or 'fp16'" in found["precision"][1]


def test_errors_inside_a_component_use_the_users_key_path(tmp_path: Path) -> None:
    text = BASE.replace("batch_size: 16", "batch_size: many\n  shufle: true")
    found = problems(write(tmp_path, "bad.yaml", text))
    assert found["data.batch_size"][0] == 3
    assert "valid integer" in found["data.batch_size"][1]
    assert found["data.shufle"][0] == 4
    assert "unknown key 'shufle'" in found["data.shufle"][1]
    assert "allowed keys: num_samples, in_dim, out_dim, noise, batch_size" in found["data.shufle"][1]


def test_unknown_key_suggests_the_close_match(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "bad.yaml", BASE.replace("lr: 1e-3", "lr: 1e-3, momentun: 0.9")))
    assert "did you mean 'momentum'" in found["optimizers.default.momentun"][1]


def test_unknown_top_level_key_is_an_error(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "bad.yaml", BASE + "trainning: {}\n"))
    assert "did you mean 'training'" in found["trainning"][1]


def test_missing_type_lists_installed_names(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "bad.yaml", BASE.replace("{type: sample_huber}", "{weight: 2}")))
    assert "missing key 'type'" in found["losses.fit"][1]
    assert "installed loss types: " in found["losses.fit"][1]
    assert "sample_huber" in found["losses.fit"][1]


def test_missing_required_sections(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "bad.yaml", "seed: 1\n"))
    assert {"data", "optimizers", "trainer"} <= set(found)
    assert found["trainer"][1] == "required key is missing"


def test_model_component_must_name_a_defined_optimizer(tmp_path: Path) -> None:
    text = BASE.replace("hidden: 8}", "hidden: 8}\n    optimizer: slow")
    found = problems(write(tmp_path, "bad.yaml", text))
    assert found["model.net.optimizer"] == (7, "no optimizer named 'slow'; defined in 'optimizers': default")


def test_old_plugins_key_explains_discovery_and_imports_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "imported"
    module = tmp_path / "legacy_plugin.py"
    module.write_text(f"open({str(marker)!r}, 'w').close()\n")
    found = problems(write(tmp_path, "old.yaml", "plugins: [legacy_plugin]\n" + BASE))
    assert found["plugins"][0] == 1
    assert "discovered automatically" in found["plugins"][1]
    assert not marker.exists()


def test_extends_merges_and_relative_arch_files_resolve_from_their_own_file(tmp_path: Path) -> None:
    write(tmp_path, "base/models/net.yaml", "type: sample_linear\nhidden: 32\n")
    write(tmp_path, "base/base.yaml", BASE.replace("arch: {type: sample_linear, hidden: 8}", "arch: ./models/net.yaml"))
    child = write(tmp_path, "variants/child.yaml", "extends: ../base/base.yaml\noptimizers:\n  default: {lr: 0.5}\n")
    config = load_experiment(child).config
    assert config.model["net"].arch.hidden == 32  # type: ignore[attr-defined]
    assert config.optimizers["default"].lr == 0.5  # type: ignore[attr-defined]
    assert config.optimizers["default"].type == "sample_sgd"


def test_errors_in_an_extended_file_name_that_file(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yaml", BASE.replace("batch_size: 16", "batch_size: -1"))
    child = write(tmp_path, "child.yaml", "extends: ./base.yaml\nseed: 3\n")
    with pytest.raises(ConfigError) as info:
        load_experiment(child)
    (issue,) = info.value.issues
    assert (issue.file, issue.line, issue.path) == (str(base), 3, "data.batch_size")


def test_changing_a_component_type_replaces_the_section(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", BASE.replace("{type: sample_huber}", "{type: sample_huber, delta: 3.0}"))
    child = write(tmp_path, "child.yaml", "extends: ./base.yaml\nlosses:\n  fit: {type: sample_huber}\n")
    assert load_experiment(child).config.losses["fit"].delta == 3.0  # type: ignore[attr-defined]


def test_packaged_names_resolve_for_extends_and_commands(tmp_path: Path) -> None:
    child = write(tmp_path, "child.yaml", "extends: sample/regression\ntraining: {max_steps: 7}\n")
    config = load_experiment(child).config
    assert config.training.max_steps == 7
    assert config.data.type == "sample_regression"
    assert load_experiment("sample/regression").source.name == "regression.yaml"


def test_unknown_packaged_name_suggests_close_names() -> None:
    found = problems("sample/regresion")
    assert "did you mean 'sample/regression'" in found[""][1]


def test_circular_extends_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "extends: ./b.yaml\n")
    write(tmp_path, "b.yaml", "extends: ./a.yaml\n")
    with pytest.raises(ConfigError, match="circular extends"):
        load_experiment(tmp_path / "a.yaml")


def test_overrides_apply_last_and_are_parsed_as_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "exp.yaml", BASE)
    config = load_experiment(path, ["optimizers.default.lr=2e-2", "model.net.arch.hidden=64", "seed=9"]).config
    assert config.optimizers["default"].lr == pytest.approx(0.02)  # type: ignore[attr-defined]
    assert config.model["net"].arch.hidden == 64  # type: ignore[attr-defined]
    assert config.seed == 9


def test_bad_override_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "exp.yaml", BASE)
    with pytest.raises(ConfigError) as info:
        load_experiment(path, ["optimizers.default.lr=fast"])
    (issue,) = info.value.issues
    assert issue.path == "optimizers.default.lr"
    assert "optimizers.default.lr=fast" in issue.file


def test_override_without_equals_sign_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"expected KEY\.PATH=VALUE"):
        load_experiment(write(tmp_path, "exp.yaml", BASE), ["seed"])


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    found = problems(tmp_path / "nope.yaml")
    assert "file not found" in found[""][1]
