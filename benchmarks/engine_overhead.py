"""Engine overhead: steps/s of the vfp training engine against a hand-written PyTorch loop.

Both train the same MLP on the same in-memory data (the same tensors, the same batch size, Adam,
fp32, one process), in the same run, interleaved. The engine runs exactly as `vfp train` does
(sampler, loss-term sum, NaN guard, loggers every 100 steps, progress off); its steps/s are timed
between two logging steps, so set-up and the final checkpoint are left out, as the hand-written
loop's warm-up is. Target: the engine reaches at least 0.97 of the hand-written loop's steps/s.

    python benchmarks/engine_overhead.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

import vfp
from vfp import ComponentConfig, ComponentKind, ComponentSpec, LossConfig
from vfp._plugins import PluginHost
from vfp.config import validate_data
from vfp.engine import LossOutput, TrainerContext, TrainOptions, train
from vfp.protocols import Batch, DataInfo, FeatureInfo, NormalizationStats, OptimizerBundle

HERE = __name__  # the components below are registered under this module's name


# benchmark-local components ------------------------------------------------------------------
class BenchDataConfig(ComponentConfig):
    num_samples: int = 16384
    in_dim: int = 32
    out_dim: int = 16
    batch_size: int = 256


class MlpConfig(ComponentConfig):
    hidden: int = 256
    layers: int = 2


class MseConfig(LossConfig):
    pass


class AdamConfig(ComponentConfig):
    lr: float = 1e-3


class BenchTrainerConfig(ComponentConfig):
    pass


def make_tensors(config: BenchDataConfig) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(config.num_samples, config.in_dim, generator=generator)
    y = torch.randn(config.num_samples, config.out_dim, generator=generator)
    return x, y


class TensorPairs(Dataset[Batch]):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        index = torch.as_tensor(indices)
        return {"observation.state": self.x[index], "action": self.y[index]}

    def __getitem__(self, index: int) -> Batch:
        return {"observation.state": self.x[index], "action": self.y[index]}


class BenchData:
    def __init__(self, config: BenchDataConfig) -> None:
        self.config = config
        self.batch_size = config.batch_size
        self.num_workers = 0
        self._train: TensorPairs | None = None

    def setup(self) -> None:
        self._train = TensorPairs(*make_tensors(self.config))

    @property
    def info(self) -> DataInfo:
        features = {
            "observation.state": FeatureInfo("observation.state", (self.config.in_dim,), "state"),
            "action": FeatureInfo("action", (self.config.out_dim,), "action"),
        }
        return DataInfo(features=features, history=1, horizon=1)

    @property
    def train_dataset(self) -> Dataset[Batch]:
        assert self._train is not None
        return self._train

    @property
    def val_dataset(self) -> Dataset[Batch] | None:
        return None

    @property
    def collate_fn(self) -> Callable[[Any], Batch]:
        return lambda batch: batch

    def normalization_stats(self) -> NormalizationStats:
        return {}


def build_mlp(config: MlpConfig, in_dim: int, out_dim: int) -> nn.Module:
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(config.layers):
        layers += [nn.Linear(width, config.hidden), nn.ReLU()]
        width = config.hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class Mse(nn.Module):
    def __init__(self, config: MseConfig) -> None:
        super().__init__()

    def forward(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(predicted, target)


def build_adam(config: AdamConfig, groups: Sequence[dict[str, Any]], total_steps: int) -> OptimizerBundle:
    return OptimizerBundle(torch.optim.Adam(list(groups), lr=config.lr))


class BenchTrainer:
    def __init__(self, config: BenchTrainerConfig, context: TrainerContext) -> None:
        info = context.info
        self.net = context.build_model(
            "net", in_dim=info.features["observation.state"].shape[0], out_dim=info.action_dim
        )
        self.mse = context.build_loss("mse")

    def compute_losses(self, batch: Batch) -> LossOutput:
        return LossOutput({"mse": self.mse(self.net(batch["observation.state"]), batch["action"])})

    def sample_actions(self, observation: Batch, steps: int | None = None) -> torch.Tensor:
        prediction: torch.Tensor = self.net(observation["observation.state"])
        return prediction


def bench_host() -> PluginHost:
    host = PluginHost()
    for spec in (
        ComponentSpec(ComponentKind.DATALOADER, "bench_data", BenchDataConfig, f"{HERE}:BenchData"),
        ComponentSpec(ComponentKind.MODEL, "bench_mlp", MlpConfig, f"{HERE}:build_mlp"),
        ComponentSpec(ComponentKind.LOSS, "bench_mse", MseConfig, f"{HERE}:Mse"),
        ComponentSpec(ComponentKind.OPTIMIZER, "bench_adam", AdamConfig, f"{HERE}:build_adam"),
        ComponentSpec(ComponentKind.TRAINER, "bench", BenchTrainerConfig, f"{HERE}:BenchTrainer"),
    ):
        host.registry.add(spec)
    return host


# the two contestants ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    name: str
    in_dim: int
    out_dim: int
    hidden: int
    layers: int
    batch_size: int
    steps: int
    warmup: int


CASES = (
    Case("small MLP", 32, 16, 256, 2, 256, steps=2100, warmup=100),
    Case("mid-sized MLP", 64, 32, 512, 3, 256, steps=420, warmup=20),
)


def experiment(case: Case) -> dict[str, Any]:
    return {
        "seed": 0,
        "data": {"type": "bench_data", "in_dim": case.in_dim, "out_dim": case.out_dim, "batch_size": case.batch_size},
        "model": {"net": {"arch": {"type": "bench_mlp", "hidden": case.hidden, "layers": case.layers}}},
        "losses": {"mse": {"type": "bench_mse"}},
        "optimizers": {"default": {"type": "bench_adam"}},
        "trainer": {"type": "bench"},
        "training": {"max_steps": case.steps, "grad_clip_norm": None},
        "evaluation": {"every": 0},
        "checkpointing": {"every": 0},
        "logging": {"every": case.warmup},
    }


@dataclass(frozen=True)
class Speed:
    """Steps per second of wall-clock time and of this process's CPU time."""

    wall: float
    cpu: float


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _speed(steps: int, start: tuple[float, float], end: tuple[float, float]) -> Speed:
    return Speed(steps / (end[0] - start[0]), steps / (end[1] - start[1]))


class StepClock:
    """Notes the time at each logging step (the engine calls it there, after logging)."""

    def __init__(self) -> None:
        self.times: dict[int, tuple[float, float]] = {}

    @vfp.hookimpl
    def vfp_on_step_end(self, run: object, step: int, metrics: Mapping[str, float]) -> None:
        self.times[step] = _clock()


def engine_speed(case: Case, host: PluginHost, workdir: Path) -> Speed:
    config = validate_data(experiment(case), host.registry, "benchmark")
    clock = StepClock()
    host.register_object(clock, "step-clock")
    try:
        train(config, TrainOptions(run_dir=workdir / f"run-{time.monotonic_ns()}", progress="none", host=host))
    finally:
        host.unregister_object(clock)
    return _speed(case.steps - case.warmup, clock.times[case.warmup], clock.times[case.steps])


def hand_written_speed(case: Case) -> Speed:
    torch.manual_seed(0)
    x, y = make_tensors(BenchDataConfig(type="bench_data", in_dim=case.in_dim, out_dim=case.out_dim))
    model = build_mlp(MlpConfig(type="bench_mlp", hidden=case.hidden, layers=case.layers), case.in_dim, case.out_dim)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = Mse(MseConfig(type="bench_mse"))  # the loss module the engine's trainer uses
    generator = torch.Generator().manual_seed(0)
    batches_per_epoch = x.shape[0] // case.batch_size
    order = torch.randperm(x.shape[0], generator=generator)
    started = _clock()
    for step in range(case.steps):
        if step == case.warmup:
            started = _clock()
        position = step % batches_per_epoch
        if position == 0 and step:
            order = torch.randperm(x.shape[0], generator=generator)
        index = order[position * case.batch_size : (position + 1) * case.batch_size]
        loss = criterion(model(x[index]), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return _speed(case.steps - case.warmup, started, _clock())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="Interleaved runs of each contestant per case.")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 keeps shared machines from oversubscribing)."
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    host = bench_host()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            hand_runs: list[Speed] = []
            engine_runs: list[Speed] = []
            for repeat in range(args.repeats):  # alternate who goes first, so neither gains from the order
                if repeat % 2:
                    engine_runs.append(engine_speed(case, host, Path(tmp)))
                    hand_runs.append(hand_written_speed(case))
                else:
                    hand_runs.append(hand_written_speed(case))
                    engine_runs.append(engine_speed(case, host, Path(tmp)))
                print(f"{case.name}: hand-written {hand_runs[-1]}, engine {engine_runs[-1]}", flush=True)
            rows.append((case, hand_runs, engine_runs))
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.repeats} interleaved runs each; ")
    print("steps/s of wall-clock time and of process CPU time (best run; median ratio in brackets)\n")
    print("| model | params | batch | hand wall | vfp wall | ratio wall | hand CPU | vfp CPU | ratio CPU |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for case, hand, engine in rows:
        model = build_mlp(
            MlpConfig(type="bench_mlp", hidden=case.hidden, layers=case.layers), case.in_dim, case.out_dim
        )
        params = sum(p.numel() for p in model.parameters())
        cells = [f"{case.name} ({case.layers}x{case.hidden})", f"{params:,}", str(case.batch_size)]
        for kind in ("wall", "cpu"):
            mine = [getattr(speed, kind) for speed in engine]
            theirs = [getattr(speed, kind) for speed in hand]
            ratio = max(mine) / max(theirs)
            median_ratio = statistics.median(mine) / statistics.median(theirs)
            cells += [f"{max(theirs):.1f}", f"{max(mine):.1f}", f"{ratio:.3f} ({median_ratio:.3f})"]
        print("| " + " | ".join(cells) + " |")
    print("\ntarget: ratio >= 0.97")


if __name__ == "__main__":
    main()
