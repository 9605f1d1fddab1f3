"""Loss sections in experiment YAML: built by name, and bad settings reported with file, line and key path.

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

EXPERIMENT = """\
data:
  type: sample_regression
model:
  net:
    arch: {{type: sample_linear}}
losses:
{losses}
optimizers:
  default: {{type: sample_sgd}}
trainer:
  type: sample_regression
"""


def experiment(tmp_path: Path, losses: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(EXPERIMENT.format(losses=losses), encoding="utf-8")
    return path


problems = config_problems


def test_losses_are_built_by_name_from_yaml(tmp_path: Path) -> None:
    path = experiment(
        tmp_path,
        "  fit: {type: l2, reduction: sum}\n"
        "  ot: {type: sinkhorn, p: 1, blur: 0.1, weight: 0.5}\n"
        "  gate: {type: moe_gating, z_loss_weight: 0.01}\n",
    )
    config = load_experiment(path).config
    registry = get_host().registry
    built = {name: registry.load(ComponentKind.LOSS, section.type)(section) for name, section in config.losses.items()}
    assert built["fit"](torch.zeros(2, 3), torch.ones(2, 3)).item() == pytest.approx(6.0)
    assert built["ot"].samples_loss.p == 1
    assert built["ot"].samples_loss.blur == pytest.approx(0.1)
    assert set(built["gate"](torch.zeros(4, 3))) == {"load_balance", "z_loss"}


def test_non_positive_blur_names_the_key_and_line(tmp_path: Path) -> None:
    path = experiment(tmp_path, "  ot:\n    type: sinkhorn\n    blur: 0\n")
    line, message = problems(path)["losses.ot.blur"]
    assert line == line_of(path, "blur: 0")
    assert "greater than 0" in message


@pytest.mark.parametrize("p", ["3", "1.5", "0"])
def test_p_other_than_1_or_2_names_the_key_and_line(tmp_path: Path, p: str) -> None:
    path = experiment(tmp_path, f"  ot:\n    type: sinkhorn\n    p: {p}\n")
    line, message = problems(path)["losses.ot.p"]
    assert line == line_of(path, f"p: {p}")
    assert "1 or 2" in message


def test_scaling_outside_zero_one_is_an_error(tmp_path: Path) -> None:
    path = experiment(tmp_path, "  ot: {type: sinkhorn, scaling: 1.0}\n")
    assert "less than 1" in problems(path)["losses.ot.scaling"][1]


def test_unknown_reduction_lists_the_choices(tmp_path: Path) -> None:
    path = experiment(tmp_path, "  fit: {type: l2, reduction: average}\n")
    assert "'mean', 'sum' or 'none'" in problems(path)["losses.fit.reduction"][1]


def test_negative_term_weight_is_an_error(tmp_path: Path) -> None:
    path = experiment(tmp_path, "  gate: {type: moe_gating, entropy_weight: -0.1}\n")
    assert "greater than or equal to 0" in problems(path)["losses.gate.entropy_weight"][1]


def test_misspelled_key_is_an_error_not_dropped(tmp_path: Path) -> None:
    path = experiment(tmp_path, "  ot: {type: sinkhorn, blurr: 0.1}\n")
    assert "did you mean 'blur'" in problems(path)["losses.ot.blurr"][1]
