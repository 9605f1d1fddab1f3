"""Named model components: per-component optimizers, init schemes, init_from and freeze.

Uses a test-local trainer with two components (engine_test_components.TwoPartTrainer) on the
vfp-sample plugin's data, model, loss and optimizer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from engine_helpers import Recorder, final_weights, run, two_part_config

from vfp._plugins import PluginHost
from vfp.config import ConfigError
from vfp.engine import evaluate_checkpoint


@pytest.fixture
def rec(two_part_host: PluginHost) -> Iterator[Recorder]:
    recorder = Recorder()
    two_part_host.register_object(recorder, "recorder")
    yield recorder
    two_part_host.unregister_object(recorder)


def test_each_component_is_trained_by_the_optimizer_it_names(
    tmp_path: Path, two_part_host: PluginHost, rec: Recorder
) -> None:
    run(two_part_config(tmp_path, two_part_host), tmp_path / "run")
    groups, params = rec.at_start["optimizer_params"], rec.at_start["component_params"]
    assert groups == {"default": [params["head"]], "slow": [params["encoder"]]}
    assert rec.train_metrics[1]["lr/default"] == 0.1
    assert rec.train_metrics[1]["lr/slow"] == 0.01


def test_a_frozen_component_keeps_its_weights_and_gets_no_optimizer(
    tmp_path: Path, two_part_host: PluginHost, rec: Recorder
) -> None:
    run(two_part_config(tmp_path, two_part_host, "model.encoder.freeze=true"), tmp_path / "run")
    first, last = rec.weights[0], rec.weights[4]
    assert all(torch.equal(first[k], last[k]) for k in first if k.startswith("encoder."))
    assert not torch.equal(first["head.weight"], last["head.weight"])
    assert set(rec.at_start["optimizer_params"]) == {"default"}
    assert not any(p.requires_grad for p in rec.run.models["encoder"].parameters())


def test_init_zeros_zeroes_the_component_before_training(
    tmp_path: Path, two_part_host: PluginHost, rec: Recorder
) -> None:
    run(two_part_config(tmp_path, two_part_host, "model.head.init=zeros"), tmp_path / "run")
    assert all(not tensor.any() for key, tensor in rec.weights[0].items() if key.startswith("head."))
    assert rec.weights[0]["encoder.weight"].any()


def test_init_orthogonal_gives_orthogonal_weights_and_zero_biases(
    tmp_path: Path, two_part_host: PluginHost, rec: Recorder
) -> None:
    config = two_part_config(tmp_path, two_part_host, "model.encoder.init=orthogonal")
    run(config, tmp_path / "run")
    weight = rec.weights[0]["encoder.weight"]  # (3, 4): orthonormal rows
    torch.testing.assert_close(weight @ weight.T, torch.eye(3), rtol=0, atol=1e-5)
    assert not rec.weights[0]["encoder.bias"].any()


def test_init_from_loads_a_component_of_another_run(tmp_path: Path, two_part_host: PluginHost, rec: Recorder) -> None:
    run(two_part_config(tmp_path, two_part_host, "seed=11"), tmp_path / "donor")
    donor = final_weights(tmp_path / "donor")["encoder"]
    config = two_part_config(tmp_path, two_part_host, f"model.encoder.init_from={tmp_path / 'donor'}#encoder")
    run(config, tmp_path / "run")
    assert torch.equal(rec.weights[0]["encoder.weight"], donor["weight"])


def test_init_from_a_missing_component_is_a_config_error(tmp_path: Path, two_part_host: PluginHost) -> None:
    run(two_part_config(tmp_path, two_part_host), tmp_path / "donor")
    config = two_part_config(tmp_path, two_part_host, f"model.encoder.init_from={tmp_path / 'donor'}#decoder")
    with pytest.raises(ConfigError, match=r"model\.encoder\.init_from: .*no model component 'decoder'.*encoder, head"):
        run(config, tmp_path / "run")


def test_a_component_the_trainer_does_not_build_is_a_config_error(tmp_path: Path, two_part_host: PluginHost) -> None:
    config = two_part_config(tmp_path, two_part_host, "model.extra={arch: {type: sample_linear}}")
    with pytest.raises(ConfigError, match=r"model\.extra: trainer 'two_part' does not use this model component"):
        run(config, tmp_path / "run")


def test_a_loss_the_trainer_does_not_use_is_a_config_error(tmp_path: Path, two_part_host: PluginHost) -> None:
    config = two_part_config(tmp_path, two_part_host, "losses.fti={type: sample_huber}")
    with pytest.raises(ConfigError, match=r"losses\.fti: trainer 'two_part' does not use this loss"):
        run(config, tmp_path / "run")


def test_an_optimizer_no_component_uses_is_a_config_error(tmp_path: Path, two_part_host: PluginHost) -> None:
    with pytest.raises(ConfigError, match=r"optimizers\.spare: no model component uses this optimizer"):
        two_part_config(tmp_path, two_part_host, "optimizers.spare={type: sample_sgd}")  # found by validation


def test_a_component_the_config_lacks_is_a_config_error_naming_it(tmp_path: Path, two_part_host: PluginHost) -> None:
    from engine_helpers import TWO_PART_YAML

    from vfp.config import load_experiment

    path = tmp_path / "no_head.yaml"
    text = TWO_PART_YAML.replace("  head: {arch: {type: sample_linear, hidden: 0}}\n", "")
    path.write_text(text.replace("  default: {type: sample_sgd, lr: 0.1}\n", ""))  # only head used it
    config = load_experiment(path, host=two_part_host).config
    with pytest.raises(ConfigError, match=r"model\.head: trainer 'two_part' needs a model component named 'head'"):
        run(config, tmp_path / "run")


def test_evaluation_passes_the_integration_steps_to_the_trainer(tmp_path: Path, two_part_host: PluginHost) -> None:
    run(two_part_config(tmp_path, two_part_host), tmp_path / "run")
    assert evaluate_checkpoint(tmp_path / "run", steps=7).metrics["steps_seen"] == 7
    assert evaluate_checkpoint(tmp_path / "run").metrics["steps_seen"] == -1


def test_evaluation_skips_action_error_for_trainers_that_sample_no_actions(
    tmp_path: Path, two_part_host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine_test_components import TwoPartTrainer

    run(two_part_config(tmp_path, two_part_host), tmp_path / "run")
    assert "action_mse" in evaluate_checkpoint(tmp_path / "run").metrics

    def refuse(self: object, observation: object, steps: int | None = None) -> None:
        raise NotImplementedError("not a policy")

    monkeypatch.setattr(TwoPartTrainer, "samples_actions", False, raising=False)
    monkeypatch.setattr(TwoPartTrainer, "sample_actions", refuse)
    metrics = evaluate_checkpoint(tmp_path / "run").metrics
    assert "action_mse" not in metrics
    assert "loss" in metrics
