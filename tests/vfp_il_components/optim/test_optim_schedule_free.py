"""schedule_free: the schedulefree optimizers, built in train mode, with evaluation weights of their own."""

from __future__ import annotations

from typing import Any

import pytest
import schedulefree
import torch

from vfp.protocols import OptimizerBundle
from vfp_il_components.optim.builders import build_schedule_free
from vfp_il_components.optim.specs import ScheduleFreeConfig


def regression(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(128, 4, generator=generator)
    targets = inputs @ torch.randn(4, 2, generator=generator) + 0.1 * torch.randn(128, 2, generator=generator)
    torch.manual_seed(seed)
    return torch.nn.Linear(4, 2), inputs, targets


def build(model: torch.nn.Module, **settings: Any) -> OptimizerBundle:
    config = ScheduleFreeConfig(type="schedule_free", lr=0.05, **settings)
    return build_schedule_free(config, [{"name": "net", "params": list(model.parameters())}], 100)


def train(model: torch.nn.Module, bundle: OptimizerBundle, inputs: torch.Tensor, targets: torch.Tensor) -> None:
    for step in range(40):
        rows = slice((step * 16) % 128, (step * 16) % 128 + 16)
        bundle.optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(inputs[rows]), targets[rows]).backward()
        bundle.optimizer.step()


def weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()]).clone()


@pytest.mark.parametrize(
    ("variant", "cls"), [("adamw", schedulefree.AdamWScheduleFree), ("radam", schedulefree.RAdamScheduleFree)]
)
def test_variant_selects_the_schedulefree_optimizer(variant: str, cls: type) -> None:
    bundle = build(regression()[0], variant=variant)
    assert type(bundle.optimizer) is cls
    assert bundle.schedule_free
    assert bundle.scheduler is None


@pytest.mark.parametrize("variant", ["adamw", "radam"])
def test_evaluation_weights_differ_from_the_training_iterate(variant: str) -> None:
    model, inputs, targets = regression()
    bundle = build(model, variant=variant)
    train(model, bundle, inputs, targets)  # no explicit train() call: the bundle starts in train mode
    training_iterate = weights(model)
    bundle.optimizer.eval()  # type: ignore[attr-defined]
    evaluation = weights(model)
    assert not torch.allclose(training_iterate, evaluation, atol=1e-4)


def test_switching_back_to_train_mode_restores_the_training_iterate() -> None:
    model, inputs, targets = regression()
    bundle = build(model)
    train(model, bundle, inputs, targets)
    training_iterate = weights(model)
    bundle.optimizer.eval()  # type: ignore[attr-defined]
    bundle.optimizer.train()  # type: ignore[attr-defined]
    torch.testing.assert_close(weights(model), training_iterate)


def test_evaluation_weights_fit_the_data() -> None:
    model, inputs, targets = regression()
    bundle = build(model)
    initial = torch.nn.functional.mse_loss(model(inputs), targets).item()
    train(model, bundle, inputs, targets)
    bundle.optimizer.eval()  # type: ignore[attr-defined]
    with torch.no_grad():
        assert torch.nn.functional.mse_loss(model(inputs), targets).item() < 0.2 * initial


def test_component_lr_scale_reaches_the_groups() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    config = ScheduleFreeConfig(type="schedule_free", lr=0.01, components={"head": {"lr_scale": 0.5}})
    param_groups = [
        {"name": "body", "params": list(model[0].parameters())},
        {"name": "head", "params": list(model[1].parameters())},
    ]
    bundle = build_schedule_free(config, param_groups, 100)
    assert [group["lr"] for group in bundle.optimizer.param_groups] == pytest.approx([0.01, 0.005])


def test_adamw_warmup_is_passed_through() -> None:
    bundle = build(regression()[0], warmup_steps=7)
    assert bundle.optimizer.param_groups[0]["warmup_steps"] == 7


def test_radam_with_warmup_is_an_error_at_build() -> None:
    with pytest.raises(ValueError, match="radam variant has no warmup"):
        build(regression()[0], variant="radam", warmup_steps=5)
