"""Registers a tiny regression problem: data, model, loss, optimizer and trainer."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

import vfp
from vfp import ComponentConfig, ComponentKind, ComponentSpec, LossConfig

VFP_CONTRACT = "1.0"


class RegressionDataConfig(ComponentConfig):
    """Noisy samples of y = W x + b with a fixed random W."""

    num_samples: int = Field(256, ge=8)
    in_dim: int = Field(4, ge=1)
    out_dim: int = Field(2, ge=1)
    noise: float = Field(0.01, ge=0.0)
    batch_size: int = Field(32, ge=1)
    val_fraction: float = Field(0.25, gt=0.0, lt=1.0)
    seed: int = Field(0, description="Seed of the true W, b and of the samples.")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes (0: fetch in the main process).")


class LinearModelConfig(ComponentConfig):
    """A linear layer, optionally with a hidden layer."""

    hidden: int = Field(0, ge=0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout after the hidden layer.")


class HuberConfig(LossConfig):
    delta: float = Field(1.0, gt=0.0)


class SgdConfig(ComponentConfig):
    """SGD with an optional linear warmup, or schedule-free SGD (the ``schedulefree`` package)."""

    lr: float = Field(0.05, gt=0.0)
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    warmup_steps: int = Field(0, ge=0, description="Linear learning-rate warmup (a LambdaLR scheduler).")
    schedule_free: bool = Field(False, description="Use schedulefree.SGDScheduleFree (momentum 0.9 if 0).")


class RegressionTrainerConfig(ComponentConfig):
    """Fits the model component ``net`` to the data with the ``fit`` loss."""

    report_mae: bool = True
    nan_at_step: int | None = Field(
        None, ge=1, description="Fault injection for engine tests: the loss term is NaN at this step."
    )


class ProbeConfig(ComponentConfig):
    """Writes what a 1.0 callback saw of the run context to ``legacy_probe.json`` in the run directory."""

    filename: str = "legacy_probe.json"


@vfp.hookimpl
def vfp_register_components() -> list[ComponentSpec]:
    impl = "vfp_legacy.impl"
    return [
        ComponentSpec(ComponentKind.DATALOADER, "legacy_regression", RegressionDataConfig, f"{impl}:RegressionData"),
        ComponentSpec(ComponentKind.MODEL, "legacy_linear", LinearModelConfig, "vfp_legacy.impl:build_linear"),
        ComponentSpec(ComponentKind.LOSS, "legacy_huber", HuberConfig, "vfp_legacy.impl:HuberLoss"),
        ComponentSpec(ComponentKind.OPTIMIZER, "legacy_sgd", SgdConfig, "vfp_legacy.impl:build_sgd"),
        ComponentSpec(ComponentKind.TRAINER, "legacy_regression", RegressionTrainerConfig, f"{impl}:RegressionTrainer"),
        ComponentSpec(ComponentKind.CALLBACK, "legacy_probe", ProbeConfig, f"{impl}:RunProbe"),
    ]


@vfp.hookimpl
def vfp_config_dirs() -> list[Path]:
    return [Path(__file__).parent / "configs"]
