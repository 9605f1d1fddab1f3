"""Config checks of the flow-matching trainers: missing or mistyped parts are named."""

from __future__ import annotations

import pytest
from flow_policy_helpers import naive_experiment, vfp_experiment

from vfp._plugins import get_host
from vfp.config import ConfigError, validate_data


def _errors(data: dict) -> str:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as info:
        validate_data(data, get_host().registry, "exp.yaml")
    return str(info.value)


def test_packaged_shapes_validate() -> None:
    for data in (naive_experiment(), vfp_experiment(experts=2), vfp_experiment(experts=1)):
        validate_data(data, get_host().registry, "exp.yaml")


def test_missing_velocity_is_named() -> None:
    data = naive_experiment()
    del data["model"]["velocity"]
    assert "needs a model component named 'velocity'" in _errors(data)


def test_prior_and_posterior_must_be_the_same_kind() -> None:
    data = vfp_experiment(experts=1)
    data["model"]["prior"]["arch"] = {"type": "categorical_head"}
    assert "must be of the same kind" in _errors(data)


def test_vfp_needs_a_gate() -> None:
    data = vfp_experiment(experts=2)
    del data["model"]["gate"]
    assert "needs a model component named 'gate'" in _errors(data)


def test_single_expert_refuses_a_gate() -> None:
    data = vfp_experiment(experts=2)
    data["trainer"] = {"type": "vfp_single_expert"}
    assert "does not use this model component" in _errors(data)


def test_alignment_must_be_a_sinkhorn_loss() -> None:
    data = vfp_experiment(experts=1)
    data["losses"]["alignment"] = {"type": "l2"}
    assert "loss 'alignment'" in _errors(data)
