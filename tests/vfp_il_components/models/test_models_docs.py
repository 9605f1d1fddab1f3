"""docs/components/models.md stays true: every YAML example validates as a model architecture."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import vfp
from vfp.config import validate_data

DOC = Path(__file__).resolve().parents[3] / "docs" / "components" / "models.md"
EXAMPLES = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


def experiment_with(arch: dict[str, Any]) -> dict[str, Any]:
    """A minimal experiment around one architecture (the sample plugin supplies the other sections)."""
    return {
        "data": {"type": "sample_regression"},
        "model": {"net": {"arch": arch}},
        "optimizers": {"default": {"type": "sample_sgd"}},
        "trainer": {"type": "sample_regression"},
    }


def test_the_doc_has_an_example_for_every_block() -> None:
    types = {yaml.safe_load(example)["type"] for example in EXAMPLES}
    assert types == {
        "mlp",
        "chunk_transformer",
        "conv_encoder",
        "obs_encoder",
        "gaussian_encoder",
        "categorical_head",
        "gate",
        "moe_decoder",
        "vq_codebook",
    }


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda text: yaml.safe_load(text)["type"])
def test_yaml_example_validates(example: str) -> None:
    arch = yaml.safe_load(example)
    config = validate_data(experiment_with(arch), vfp._plugins.PluginHost().registry, str(DOC))
    assert config.model["net"].arch.type == arch["type"]
