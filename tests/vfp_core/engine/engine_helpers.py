"""Helpers for the engine tests: configs from the vfp-sample plugin, runs through the public API,
and a recorder that implements the lifecycle hooks like a third-party callback would.

(A uniquely named module: ``from conftest import ...`` would be ambiguous across test folders.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

import vfp
from vfp._plugins import PluginHost
from vfp.config import ExperimentConfig, load_experiment
from vfp.engine import TrainOptions, TrainResult, train
from vfp.engine.checkpoint import find_checkpoint, load_checkpoint

HERE = Path(__file__).parent
SAMPLE = "sample/regression"
FAST = ("logging.callbacks=[{type: jsonl}]",)
"""Only the JSONL logger: most tests do not need TensorBoard event files."""


def sample_config(*overrides: str, host: PluginHost | None = None) -> ExperimentConfig:
    """The vfp-sample regression experiment with overrides (the JSONL logger only, unless overridden)."""
    return load_experiment(SAMPLE, [*FAST, *overrides], host=host).config


def run(config: ExperimentConfig, run_dir: Path, **options: Any) -> TrainResult:
    """Train in this process, quietly."""
    options.setdefault("progress", "none")
    return train(config, TrainOptions(run_dir=run_dir, **options))


def final_weights(run_dir: Path, section: str = "models") -> dict[str, dict[str, torch.Tensor]]:
    weights: dict[str, dict[str, torch.Tensor]] = load_checkpoint(find_checkpoint(run_dir))[section]
    return weights


Weights = Mapping[str, Mapping[str, torch.Tensor]]


def assert_weights_equal(a: Weights, b: Weights) -> None:
    assert a.keys() == b.keys()
    for component in a:
        assert a[component].keys() == b[component].keys()
        for key in a[component]:
            assert torch.equal(a[component][key], b[component][key]), f"{component}.{key} differs"


def vfp_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -m vfp ARGS`` as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "vfp", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


class Recorder:
    """A callback that records what the lifecycle hooks receive (and the live weights)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int | None]] = []
        self.train_metrics: dict[int, dict[str, float]] = {}
        self.eval_metrics: dict[int, dict[str, float]] = {}
        self.weights: dict[int, dict[str, torch.Tensor]] = {}
        self.at_start: dict[str, Any] = {}
        self.run: Any = None

    def snapshot(self, run: Any) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in run.models.state_dict().items()}

    @vfp.hookimpl
    def vfp_on_train_start(self, run: Any) -> None:
        self.run = run
        self.events.append(("start", run.start_step))
        self.weights[run.start_step] = self.snapshot(run)
        self.at_start["deterministic"] = torch.are_deterministic_algorithms_enabled()
        self.at_start["process_group"] = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.at_start["optimizer_params"] = {
            name: [{id(p) for p in group["params"]} for group in bundle.optimizer.param_groups]
            for name, bundle in run.optimizers.items()
        }
        self.at_start["component_params"] = {
            name: {id(p) for p in module.parameters()} for name, module in run.models.items()
        }

    @vfp.hookimpl
    def vfp_on_step_end(self, run: Any, step: int, metrics: Mapping[str, float]) -> None:
        self.events.append(("step", step))
        self.train_metrics[step] = dict(metrics)
        self.weights[step] = self.snapshot(run)

    @vfp.hookimpl
    def vfp_on_evaluation_end(self, run: Any, step: int, metrics: Mapping[str, float]) -> None:
        self.events.append(("evaluation", step))
        self.eval_metrics[step] = dict(metrics)

    @vfp.hookimpl
    def vfp_on_checkpoint_saved(self, run: Any, step: int, path: Path) -> None:
        self.events.append(("checkpoint", step))

    @vfp.hookimpl
    def vfp_on_train_end(self, run: Any, status: str) -> None:
        self.events.append((f"end:{status}", None))


TEST_COMPONENTS = "engine_test_components"


TWO_PART_YAML = """\
seed: 3
data: {type: sample_regression, num_samples: 64, batch_size: 8}
model:
  encoder: {arch: {type: sample_linear, hidden: 0}, optimizer: slow}
  head: {arch: {type: sample_linear, hidden: 0}}
losses:
  fit: {type: sample_huber}
optimizers:
  default: {type: sample_sgd, lr: 0.1}
  slow: {type: sample_sgd, lr: 0.01}
trainer: {type: two_part, width: 3}
training: {max_steps: 4, grad_clip_norm: null}
logging: {every: 1, callbacks: [{type: jsonl}]}
"""


def two_part_config(tmp_path: Path, host: PluginHost, *overrides: str) -> ExperimentConfig:
    path = tmp_path / "two_part.yaml"
    path.write_text(TWO_PART_YAML)
    return load_experiment(path, overrides, host=host).config


def overrides_for(values: Mapping[str, object]) -> Sequence[str]:
    return [f"{key}={value}" for key, value in values.items()]
