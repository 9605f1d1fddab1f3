"""Registration of the model blocks: names in the registry, a torch-free light module, config validation."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import torch
from pydantic import ValidationError

import vfp
from vfp import ComponentKind
from vfp.protocols import DataInfo, FeatureInfo
from vfp_il_components.models import specs

NAMES = [
    "mlp",
    "chunk_transformer",
    "conv_encoder",
    "obs_encoder",
    "gaussian_encoder",
    "categorical_head",
    "gate",
    "moe_decoder",
    "vq_codebook",
]


def test_every_block_is_registered_as_a_model() -> None:
    names = vfp._plugins.PluginHost().registry.names(ComponentKind.MODEL)
    assert set(NAMES) <= set(names)


def test_specs_module_imports_no_torch() -> None:
    code = (
        "import sys\n"
        "import vfp_il_components.models.specs as s\n"
        "assert s.SPECS\n"
        "heavy = sorted(m for m in ('torch', 'numpy') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", NAMES)
def test_every_target_loads_a_callable(name: str) -> None:
    assert callable(vfp._plugins.PluginHost().registry.load(ComponentKind.MODEL, name))


INFO = DataInfo(
    features={
        "observation.state": FeatureInfo("observation.state", (3,), "state"),
        "observation.image": FeatureInfo("observation.image", (3, 12, 12), "image"),
        "action": FeatureInfo("action", (2,), "action"),
    },
    history=2,
    horizon=4,
)
CHUNK = {"action_dim": 2, "horizon": 4}
DIMS: dict[str, dict[str, Any]] = {
    "mlp": {"in_dim": 3, "out_dim": 2},
    "chunk_transformer": {**CHUNK, "cond_dim": 5, "time_input": True},
    "conv_encoder": {"image_shape": (3, 12, 12)},
    "obs_encoder": {"info": INFO},
    "gaussian_encoder": {"latent_dim": 2, "cond_dim": 5},
    "categorical_head": {"num_classes": 4, "cond_dim": 5},
    "gate": {"cond_dim": 5, "num_experts": 3},
    "moe_decoder": {**CHUNK, "cond_dim": 5, "latent_dim": 2, "num_experts": 3},
    "vq_codebook": {"latent_dim": 2},
}


@pytest.mark.parametrize("name", NAMES)
def test_registry_target_builds_a_module_from_the_default_config_and_dims(name: str) -> None:
    registry = vfp._plugins.PluginHost().registry
    spec = registry.get(ComponentKind.MODEL, name)
    module = spec.load()(spec.config(type=name), **DIMS[name])
    assert isinstance(module, torch.nn.Module)
    assert sum(p.numel() for p in module.parameters()) + sum(b.numel() for b in module.buffers()) > 0


def test_residual_mlp_needs_equal_widths() -> None:
    with pytest.raises(ValidationError, match="hidden_dims must all be equal"):
        specs.MlpConfig(type="mlp", residual=True, hidden_dims=[32, 64])


def test_transformer_heads_must_divide_width() -> None:
    with pytest.raises(ValidationError, match="must divide d_model"):
        specs.ChunkTransformerConfig(type="chunk_transformer", d_model=30, num_heads=4)


def test_conv_encoder_needs_one_stride_per_layer() -> None:
    with pytest.raises(ValidationError, match="one per layer"):
        specs.ConvEncoderConfig(type="conv_encoder", channels=[8, 8], strides=[2])


def test_gaussian_log_var_bounds_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="log_var_min"):
        specs.GaussianEncoderConfig(type="gaussian_encoder", log_var_min=2.0, log_var_max=1.0)


def test_unknown_keys_are_errors() -> None:
    with pytest.raises(ValidationError, match="hiden_dims"):
        specs.MlpConfig(type="mlp", hiden_dims=[8])  # type: ignore[call-arg]


def test_moe_expert_is_chosen_by_its_type() -> None:
    config = specs.MoEDecoderConfig(type="moe_decoder", expert={"type": "chunk_transformer", "d_model": 32})
    assert isinstance(config.expert, specs.ChunkTransformerExpertConfig)
    assert config.expert.d_model == 32
    with pytest.raises(ValidationError, match="expert"):
        specs.MoEDecoderConfig(type="moe_decoder", expert={"type": "lstm"})
