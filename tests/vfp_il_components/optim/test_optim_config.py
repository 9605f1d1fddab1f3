"""Optimizer sections in experiment YAML: built by name, and bad settings reported with file, line and key path.

The experiments use the vfp-sample plugin (tests/plugins/vfp-sample) for data, model and trainer.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from vfp_test_support import config_problems, line_of

from vfp import ComponentKind
from vfp._plugins import get_host
from vfp.config import load_experiment
from vfp.protocols import OptimizerBundle

EXPERIMENT = """\
data:
  type: sample_regression
model:
  net:
    arch: {{type: sample_linear}}
  head:
    arch: {{type: sample_linear}}
    optimizer: second
optimizers:
{optimizers}
trainer:
  type: sample_regression
training:
  max_steps: 100
"""
SECOND = "  second: {type: sample_sgd}\n"


def experiment(tmp_path: Path, optimizers: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(EXPERIMENT.format(optimizers=optimizers + SECOND), encoding="utf-8")
    return path


problems = config_problems


@pytest.mark.parametrize("section", ["adamw_cosine", "onecycle", "schedule_free"])
def test_optimizers_are_built_by_name_from_yaml(tmp_path: Path, section: str) -> None:
    path = experiment(tmp_path, f"  default: {{type: {section}, lr: 2e-3, components: {{net: {{lr_scale: 0.5}}}}}}\n")
    config = load_experiment(path).config.optimizers["default"]
    params = [{"name": "net", "params": list(torch.nn.Linear(2, 2).parameters())}]
    bundle = get_host().registry.load(ComponentKind.OPTIMIZER, section)(config, params, 100)
    assert isinstance(bundle, OptimizerBundle)
    peak_key = {"adamw_cosine": "initial_lr", "onecycle": "max_lr", "schedule_free": "lr"}[section]
    assert bundle.optimizer.param_groups[0][peak_key] == pytest.approx(1e-3)


def test_negative_learning_rate_names_the_key_and_line(tmp_path: Path) -> None:
    path = experiment(tmp_path, "  default:\n    type: adamw_cosine\n    lr: -1e-4\n")
    line, message = problems(path)["optimizers.default.lr"]
    assert line == line_of(path, "lr: -1e-4")
    assert "greater than 0" in message
    assert "-0.0001" in message


def test_negative_end_learning_rate_is_an_error(tmp_path: Path) -> None:
    path = experiment(tmp_path, "  default: {type: adamw_cosine, end_lr: -1e-6}\n")
    assert "optimizers.default.end_lr" in problems(path)


def test_warmup_longer_than_training_names_the_key_and_line(tmp_path: Path) -> None:
    path = experiment(tmp_path, "  default:\n    type: adamw_cosine\n    warmup_steps: 200\n")
    line, message = problems(path)["optimizers.default.warmup_steps"]
    assert line == line_of(path, "warmup_steps: 200")
    assert "training.max_steps = 100" in message


def test_schedule_free_warmup_longer_than_training_is_an_error(tmp_path: Path) -> None:
    path = experiment(tmp_path, "  default: {type: schedule_free, warmup_steps: 100}\n")
    assert "not shorter than training" in problems(path)["optimizers.default.warmup_steps"][1]


def test_warmup_on_the_radam_variant_is_an_error(tmp_path: Path) -> None:
    path = experiment(tmp_path, "  default: {type: schedule_free, variant: radam, warmup_steps: 10}\n")
    assert "radam variant has no warmup" in problems(path)["optimizers.default.warmup_steps"][1]


def test_start_rate_above_the_peak_is_an_error(tmp_path: Path) -> None:
    path = experiment(tmp_path, "  default: {type: adamw_cosine, lr: 1e-4, start_lr: 1e-3}\n")
    assert "must not exceed the peak lr" in problems(path)["optimizers.default.start_lr"][1]


def test_onecycle_rising_phase_shorter_than_a_step_is_an_error(tmp_path: Path) -> None:
    path = experiment(tmp_path, "  default: {type: onecycle, pct_start: 0.005}\n")
    assert "longer than 1 step" in problems(path)["optimizers.default.pct_start"][1]


def test_unknown_component_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    path = experiment(tmp_path, "  default:\n    type: adamw_cosine\n    components:\n      nett: {lr_scale: 0.1}\n")
    line, message = problems(path)["optimizers.default.components.nett"]
    assert line == line_of(path, "nett:")
    assert "did you mean 'net'?" in message


def test_component_trained_by_another_optimizer_is_an_error(tmp_path: Path) -> None:
    path = experiment(tmp_path, "  default: {type: adamw_cosine, components: {head: {lr_scale: 0.1}}}\n")
    assert "trained by optimizer 'second'" in problems(path)["optimizers.default.components.head"][1]


def test_beta_of_one_or_more_is_an_error(tmp_path: Path) -> None:
    path = experiment(tmp_path, "  default: {type: onecycle, betas: [0.9, 1.0]}\n")
    assert "less than 1" in problems(path)["optimizers.default.betas.1"][1]
