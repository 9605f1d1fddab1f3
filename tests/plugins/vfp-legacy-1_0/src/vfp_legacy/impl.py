"""The legacy plugin's implementations (vfp-sample as it was at contract 1.0): a tiny linear regression."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

import vfp
from vfp.engine import EvaluationRequest, LossOutput, TrainerContext
from vfp.protocols import Batch, DataInfo, FeatureInfo, NormalizationStats, OptimizerBundle
from vfp_legacy.plugin import (
    HuberConfig,
    LinearModelConfig,
    ProbeConfig,
    RegressionDataConfig,
    RegressionTrainerConfig,
    SgdConfig,
)

STATE = "observation.state"


def _stats(values: torch.Tensor) -> dict[str, torch.Tensor]:
    return {
        "mean": values.mean(0),
        "std": values.std(0).clamp_min(1e-6),
        "min": values.min(0).values,
        "max": values.max(0).values,
    }


class RegressionWindows(Dataset[Batch]):
    """Normalized (x, y) pairs as one-step observation histories and one-step action chunks."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x = x
        self.y = y

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        index = torch.as_tensor(indices, dtype=torch.long)
        x = self.x[index].unsqueeze(1)
        y = self.y[index].unsqueeze(1)
        return {
            STATE: x,
            f"{STATE}_is_pad": torch.zeros(x.shape[:2], dtype=torch.bool),
            "action": y,
            "action_is_pad": torch.zeros(y.shape[:2], dtype=torch.bool),
        }

    def __getitem__(self, index: int) -> Batch:
        return {key: value[0] for key, value in self.__getitems__([index]).items()}


def collate(items: Batch | list[Batch]) -> Batch:
    """Batches from ``__getitems__`` pass through; lists of samples are stacked."""
    if isinstance(items, dict):
        return items
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


class RegressionData:
    """Noisy samples of ``y = W x + b``; a DataModule (vfp.protocols)."""

    def __init__(self, config: RegressionDataConfig) -> None:
        self.config = config
        self.batch_size = config.batch_size
        self.num_workers = config.num_workers
        self._train: RegressionWindows | None = None
        self._val: RegressionWindows | None = None
        self._stats: NormalizationStats = {}

    def setup(self) -> None:
        cfg = self.config
        generator = torch.Generator().manual_seed(cfg.seed)
        weight = torch.randn(cfg.out_dim, cfg.in_dim, generator=generator)
        bias = torch.randn(cfg.out_dim, generator=generator)
        x = torch.randn(cfg.num_samples, cfg.in_dim, generator=generator) * 2.0 + 1.0
        y = x @ weight.T + bias + cfg.noise * torch.randn(cfg.num_samples, cfg.out_dim, generator=generator)
        n_val = max(1, int(cfg.num_samples * cfg.val_fraction))
        x_stats, y_stats = _stats(x[n_val:]), _stats(y[n_val:])
        self._stats = {STATE: x_stats, "action": y_stats}
        x = (x - x_stats["mean"]) / x_stats["std"]
        y = (y - y_stats["mean"]) / y_stats["std"]
        self._val = RegressionWindows(x[:n_val], y[:n_val])
        self._train = RegressionWindows(x[n_val:], y[n_val:])

    @property
    def info(self) -> DataInfo:
        cfg = self.config
        return DataInfo(
            features={
                STATE: FeatureInfo(STATE, (cfg.in_dim,), "state"),
                "action": FeatureInfo("action", (cfg.out_dim,), "action"),
            },
            history=1,
            horizon=1,
        )

    @property
    def train_dataset(self) -> Dataset[Batch]:
        assert self._train is not None, "call setup() first"
        return self._train

    @property
    def val_dataset(self) -> Dataset[Batch] | None:
        return self._val

    @property
    def collate_fn(self) -> Callable[[Any], Batch]:
        return collate

    def normalization_stats(self) -> NormalizationStats:
        return self._stats


def build_linear(config: LinearModelConfig, in_dim: int, out_dim: int) -> nn.Module:
    """A linear map, or a one-hidden-layer MLP when ``hidden > 0``."""
    if config.hidden == 0:
        return nn.Linear(in_dim, out_dim)
    return nn.Sequential(
        nn.Linear(in_dim, config.hidden), nn.ReLU(), nn.Dropout(config.dropout), nn.Linear(config.hidden, out_dim)
    )


class HuberLoss(nn.Module):
    """Huber loss over unpadded action steps, times the configured weight."""

    def __init__(self, config: HuberConfig) -> None:
        super().__init__()
        self.delta = config.delta
        self.weight = config.weight

    def forward(
        self, predicted: torch.Tensor, target: torch.Tensor, is_pad: torch.Tensor | None = None
    ) -> torch.Tensor:
        error = nn.functional.huber_loss(predicted, target, delta=self.delta, reduction="none").mean(-1)
        if is_pad is not None:
            valid = (~is_pad).to(error.dtype)
            return self.weight * (error * valid).sum() / valid.sum().clamp_min(1.0)
        return self.weight * error.mean()


def build_sgd(config: SgdConfig, param_groups: Sequence[dict[str, Any]], total_steps: int) -> OptimizerBundle:
    """SGD (with a LambdaLR warmup when asked) or schedule-free SGD."""
    if config.schedule_free:
        import schedulefree

        optimizer = schedulefree.SGDScheduleFree(
            list(param_groups), lr=config.lr, momentum=config.momentum or 0.9, warmup_steps=config.warmup_steps
        )
        return OptimizerBundle(optimizer, None, schedule_free=True)
    sgd = torch.optim.SGD(list(param_groups), lr=config.lr, momentum=config.momentum)
    scheduler = None
    if config.warmup_steps:
        warmup = config.warmup_steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(sgd, lambda step: min(1.0, (step + 1) / warmup))
    return OptimizerBundle(sgd, scheduler)


class RegressionTrainer:
    """Fits model component ``net`` to the data with loss ``fit``; a vfp Trainer."""

    def __init__(self, config: RegressionTrainerConfig, context: TrainerContext) -> None:
        self.config = config
        self.context = context
        info = context.info
        self.net = context.build_model("net", in_dim=info.features[STATE].shape[0], out_dim=info.action_dim)
        self.fit = context.build_loss("fit")

    def _predict(self, observation: Mapping[str, torch.Tensor]) -> torch.Tensor:
        prediction: torch.Tensor = self.net(observation[STATE][:, -1])
        return prediction.unsqueeze(1)

    def compute_losses(self, batch: Batch) -> LossOutput:
        predicted = self._predict(batch)
        term = self.fit(predicted, batch["action"], batch.get("action_is_pad"))
        if self.config.nan_at_step is not None and self.context.step + 1 == self.config.nan_at_step:
            term = term * float("nan")
        metrics: dict[str, float | torch.Tensor] = {}
        if self.config.report_mae:
            metrics["mae"] = (predicted.detach() - batch["action"]).abs().mean()
        return LossOutput({"fit": term}, metrics)

    def sample_actions(self, observation: Batch, steps: int | None = None) -> torch.Tensor:
        return self._predict(observation)

    def evaluate(self, request: EvaluationRequest) -> dict[str, float]:
        """Mean absolute error in the data's original units (actions unnormalized with the saved stats)."""
        stats = self.context.normalization_stats["action"]
        total, count = 0.0, 0
        for batch in request.batches():
            predicted = self.sample_actions(batch, request.steps) * stats["std"] + stats["mean"]
            target = batch["action"] * stats["std"] + stats["mean"]
            total += float((predicted - target).abs().sum())
            count += target.numel()
        return {"mae_original_units": total / max(count, 1)}


class RunProbe:
    """A callback as written against contract 1.0: ``run`` untyped, reading the live training objects."""

    def __init__(self, config: ProbeConfig) -> None:
        self.config = config
        self.seen: dict[str, Any] = {}

    @vfp.hookimpl
    def vfp_on_train_start(self, run: Any) -> None:
        self.seen["start"] = {"start_step": run.start_step, "max_steps": run.max_steps, "is_main": run.is_main}

    @vfp.hookimpl
    def vfp_on_step_end(self, run: Any, step: int, metrics: Mapping[str, float]) -> None:
        self.seen["last_step"] = step
        self.seen["run_step"] = run.step

    @vfp.hookimpl
    def vfp_on_train_end(self, run: Any, status: str) -> None:
        self.seen["end"] = {
            "status": status,
            "models": sorted(run.models.keys()),
            "optimizers": sorted(run.optimizers),
            "trainer": type(run.trainer).__name__,
            "parameters": sum(p.numel() for p in run.models.parameters()),
            "seed": run.config.seed,
            "rank": run.rank,
            "world_size": run.world_size,
        }
        (run.run_dir / self.config.filename).write_text(json.dumps(self.seen), encoding="utf-8")
