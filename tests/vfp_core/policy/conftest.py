"""One tiny VFP run (the quickstart's trainer) shared by the policy tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_helpers import train_tiny


@pytest.fixture(scope="session")
def policy_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated demos, one file per experiment, shared by every policy test."""
    return tmp_path_factory.mktemp("policy-data")


@pytest.fixture(scope="session")
def vfp_run(tmp_path_factory: pytest.TempPathFactory, policy_data: Path) -> Path:
    """A VFP run (variational_flow_matching_policy/exp1, 20 steps) with its checkpoint and metrics."""
    return train_tiny("variational_flow_matching_policy/exp1", tmp_path_factory.mktemp("vfp") / "run", policy_data)
