"""The trainer contract as the type checker sees it: typed DataInfo, model roles, trainer state,
``samples_actions``; and what lifecycle hooks receive (a RunInfo that still carries the 1.0 objects)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from engine_helpers import HERE, TEST_COMPONENTS, run, sample_config, two_part_config
from torch import nn

import vfp
from vfp import ComponentKind, ComponentSpec
from vfp._plugins import PluginHost, get_host
from vfp.engine import StatefulTrainer, samples_actions, trainer_state
from vfp.engine.options import RunContext
from vfp.engine.session import data_info_record
from vfp.protocols import DataInfo, FeatureEncoder, FeatureInfo, feature_encoder, latent_head

FEATURES = {"action": FeatureInfo("action", (2,), "action")}


def test_data_info_typed_fields_are_recorded_with_checkpoints() -> None:
    info = DataInfo(FEATURES, 1, 4, task="t", task_options={"radius": 0.5}, normalization={"action": "min_max"}, fps=10)
    record = data_info_record(info)
    assert record["task_options"] == {"radius": 0.5}
    assert record["normalization"] == {"action": "min_max"}
    assert record["fps"] == 10


def test_data_info_extra_is_deprecated_but_fills_the_typed_fields() -> None:
    with pytest.warns(DeprecationWarning, match=r"DataInfo\(extra=\.\.\.\) is deprecated.*normalization"):
        info = DataInfo(FEATURES, 1, 4, extra={"normalization": {"action": "mean_std"}, "path": "demo.hdf5"})
    assert info.normalization == {"action": "mean_std"}
    assert info.source == {"path": "demo.hdf5"}
    # a 1.0 trainer reading extra keeps working, also with a 1.1 data module's typed fields
    assert info.extra["normalization"] == {"action": "mean_std"}
    assert DataInfo(FEATURES, 1, 4, train_episodes=3).extra["train_episodes"] == 3


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.out_dim = 3
        self.net = nn.Linear(2, 3)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        out: torch.Tensor = self.net(batch["observation.state"][:, -1])
        return out


def test_a_model_role_is_checked_with_an_error_naming_the_component() -> None:
    encoder = feature_encoder(Encoder(), "obs_encoder")
    assert isinstance(encoder, FeatureEncoder)
    assert encoder.out_dim == 3
    with pytest.raises(TypeError, match=r"'obs_encoder' \(Linear\) .* lacks out_dim"):
        feature_encoder(nn.Linear(2, 3), "obs_encoder")
    assert latent_head(nn.Linear(2, 3), "prior") is not None
    with pytest.raises(TypeError, match=r"'prior' \(int\) is not callable"):
        latent_head(3, "prior")


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def state_dict(self) -> dict[str, Any]:
        return {"calls": self.calls}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.calls = int(state["calls"])


class ModuleTrainer(nn.Module):
    samples_actions = False


def test_trainer_state_is_one_test_for_state_outside_the_model_components() -> None:
    counting = Counting()
    assert trainer_state(counting) is counting
    assert isinstance(counting, StatefulTrainer)
    assert trainer_state(ModuleTrainer()) is None  # its state_dict is its model components, saved already
    assert trainer_state(object()) is None


def test_samples_actions_defaults_to_true_for_1_0_trainers() -> None:
    assert samples_actions(object())
    assert not samples_actions(ModuleTrainer())


class RunProbe:
    """A callback that keeps what the hooks receive."""

    def __init__(self) -> None:
        self.runs: list[Any] = []
        self.steps: list[int] = []

    @vfp.hookimpl
    def vfp_on_train_start(self, run: vfp.RunInfo) -> None:
        self.runs.append(run)

    @vfp.hookimpl
    def vfp_on_step_end(self, run: Any, step: int, metrics: Mapping[str, float]) -> None:
        self.steps.append(run.step)


def test_hooks_receive_a_run_info_that_still_carries_the_live_objects(tmp_path: Path) -> None:
    host = get_host()
    probe = RunProbe()
    host.register_object(probe, "run-probe")
    try:
        run(sample_config("training.max_steps=3", "logging.every=1"), tmp_path / "run")
    finally:
        host.unregister_object(probe)
    (info,) = probe.runs
    assert isinstance(info, vfp.RunInfo)
    assert isinstance(info, RunContext)
    assert (info.run_dir, info.name, info.trainer_type) == (tmp_path / "run", "run", "sample_regression")
    assert (info.start_step, info.max_steps, info.is_main, info.rank, info.world_size) == (0, 3, True, 0, 1)
    assert probe.steps == [1, 2, 3]  # run.step is live
    assert set(info.models) == {"net"}
    assert set(info.optimizers) == {"default"}
    assert callable(info.trainer.compute_losses)


def test_the_host_given_in_the_options_is_the_one_used(tmp_path: Path) -> None:
    """A trainer registered only on the host passed down trains; the process-wide host does not know it."""
    sys.path.insert(0, str(HERE))
    try:
        from engine_test_components import TwoPartTrainerConfig

        host = PluginHost()
        host.registry.add(
            ComponentSpec(ComponentKind.TRAINER, "two_part", TwoPartTrainerConfig, f"{TEST_COMPONENTS}:TwoPartTrainer")
        )
        config = two_part_config(tmp_path, host)
        assert "two_part" not in get_host().registry.names(ComponentKind.TRAINER)
        assert run(config, tmp_path / "run", host=host).status == "completed"
        from vfp.engine import evaluate_checkpoint

        assert "steps_seen" in evaluate_checkpoint(tmp_path / "run", host=host).metrics
    finally:
        sys.path.remove(str(HERE))
