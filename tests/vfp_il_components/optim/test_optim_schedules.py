"""adamw_cosine and onecycle: learning rates at key steps, per-component groups, checkpoint round trips."""

from __future__ import annotations

import io
import itertools
from typing import Any

import pytest
import torch

from vfp.protocols import OptimizerBundle
from vfp_il_components.optim.builders import build_adamw_cosine, build_onecycle
from vfp_il_components.optim.schedules import warmup_cosine_factor
from vfp_il_components.optim.specs import AdamWCosineConfig, OneCycleConfig

PEAK, START, END = 1e-3, 1e-4, 1e-5


def groups(*names: str) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    return [{"name": name, "params": list(torch.nn.Linear(3, 2).parameters())} for name in names]


def cosine(total_steps: int = 110, **settings: Any) -> OptimizerBundle:
    config = AdamWCosineConfig(type="adamw_cosine", lr=PEAK, start_lr=START, end_lr=END, warmup_steps=10, **settings)
    return build_adamw_cosine(config, groups("net"), total_steps)


def onecycle(total_steps: int = 100, **settings: Any) -> OptimizerBundle:
    config = OneCycleConfig(type="onecycle", lr=PEAK, pct_start=0.3, **settings)
    return build_onecycle(config, groups("net"), total_steps)


def rates(bundle: OptimizerBundle, steps: int) -> list[float]:
    """The rate used by each of ``steps`` optimizer steps, stepping as the engine does."""
    assert bundle.scheduler is not None
    seen = []
    for _ in range(steps):
        seen.append(bundle.optimizer.param_groups[0]["lr"])
        bundle.optimizer.step()
        bundle.scheduler.step()
    return seen


def test_cosine_rate_at_key_steps() -> None:
    seen = rates(cosine(), 111)
    assert seen[0] == pytest.approx(START)
    assert seen[5] == pytest.approx((START + PEAK) / 2)
    assert seen[10] == pytest.approx(PEAK)
    assert seen[60] == pytest.approx((PEAK + END) / 2)
    assert seen[110] == pytest.approx(END)


def test_cosine_rises_during_warmup_then_decays() -> None:
    seen = rates(cosine(), 111)
    assert all(a < b for a, b in itertools.pairwise(seen[:11]))
    assert all(a > b for a, b in itertools.pairwise(seen[10:]))


def test_cosine_stays_at_end_rate_past_the_schedule() -> None:
    assert warmup_cosine_factor(500, warmup_steps=10, total_steps=110, start_factor=0.1, end_factor=0.01) == 0.01


def test_cosine_without_warmup_starts_at_the_peak() -> None:
    config = AdamWCosineConfig(type="adamw_cosine", lr=PEAK, end_lr=END)
    assert rates(build_adamw_cosine(config, groups("net"), 50), 1)[0] == pytest.approx(PEAK)


def test_onecycle_rate_at_key_steps() -> None:
    seen = rates(onecycle(), 100)
    initial = PEAK / 25
    assert seen[0] == pytest.approx(initial)
    assert seen[29] == pytest.approx(PEAK)  # end of the rising phase: pct_start * total - 1
    assert seen[64] == pytest.approx((PEAK + initial / 1e4) / 2)  # midpoint of the cosine fall
    assert seen[99] == pytest.approx(initial / 1e4)


def test_onecycle_cycles_beta1_against_the_rate() -> None:
    bundle = onecycle()
    betas = []
    for _ in range(30):
        betas.append(bundle.optimizer.param_groups[0]["betas"][0])
        bundle.optimizer.step()
        assert bundle.scheduler is not None
        bundle.scheduler.step()
    assert betas[0] == pytest.approx(0.95)
    assert betas[29] == pytest.approx(0.85)


@pytest.mark.parametrize("build", [cosine, onecycle])
def test_scheduler_resumes_exactly_from_a_checkpoint(build: Any) -> None:
    uninterrupted = rates(build(), 80)
    first = build()
    rates(first, 37)
    buffer = io.BytesIO()
    torch.save({"optimizer": first.optimizer.state_dict(), "scheduler": first.scheduler.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = build()
    resumed.optimizer.load_state_dict(saved["optimizer"])
    resumed.scheduler.load_state_dict(saved["scheduler"])
    assert rates(resumed, 43) == pytest.approx(uninterrupted[37:])


def test_resuming_with_more_steps_follows_the_longer_schedule() -> None:
    short = cosine(total_steps=110)
    rates(short, 50)
    longer = cosine(total_steps=210)
    assert longer.scheduler is not None
    assert short.scheduler is not None
    longer.scheduler.load_state_dict(short.scheduler.state_dict())
    longer.optimizer.load_state_dict(short.optimizer.state_dict())
    assert rates(longer, 161)[-1] == pytest.approx(END)
    assert rates(cosine(total_steps=210), 111)[-1] != pytest.approx(END)


def test_component_settings_scale_rate_and_set_weight_decay() -> None:
    config = AdamWCosineConfig(
        type="adamw_cosine",
        lr=PEAK,
        weight_decay=0.05,
        warmup_steps=10,
        components={"backbone": {"lr_scale": 0.1, "weight_decay": 0.0}},
    )
    bundle = build_adamw_cosine(config, groups("backbone", "head"), 100)
    assert bundle.scheduler is not None
    for _ in range(30):
        bundle.optimizer.step()
        bundle.scheduler.step()
    backbone, head = bundle.optimizer.param_groups
    assert (backbone["name"], head["name"]) == ("backbone", "head")
    assert backbone["lr"] == pytest.approx(0.1 * head["lr"])
    assert (backbone["weight_decay"], head["weight_decay"]) == (0.0, 0.05)


def test_onecycle_peaks_at_each_components_scaled_rate() -> None:
    config = OneCycleConfig(type="onecycle", lr=PEAK, components={"backbone": {"lr_scale": 0.5}})
    bundle = build_onecycle(config, groups("backbone", "head"), 100)
    assert bundle.scheduler is not None
    for _ in range(29):
        bundle.optimizer.step()
        bundle.scheduler.step()
    assert [group["lr"] for group in bundle.optimizer.param_groups] == pytest.approx([PEAK / 2, PEAK])


def test_a_group_setting_its_own_weight_decay_keeps_it() -> None:
    param_groups = groups("net", "norms")
    param_groups[1]["weight_decay"] = 0.0
    config = AdamWCosineConfig(type="adamw_cosine", weight_decay=0.1)
    bundle = build_adamw_cosine(config, param_groups, 10)
    assert [group["weight_decay"] for group in bundle.optimizer.param_groups] == [0.1, 0.0]


def test_components_naming_no_group_are_an_error() -> None:
    config = AdamWCosineConfig(type="adamw_cosine", components={"bakbone": {"lr_scale": 0.1}})
    with pytest.raises(ValueError, match=r"'components' names 'bakbone'.*groups it trains are: 'backbone'"):
        build_adamw_cosine(config, groups("backbone"), 10)


def test_warmup_not_shorter_than_training_is_an_error_at_build() -> None:
    config = AdamWCosineConfig(type="adamw_cosine", warmup_steps=10)
    with pytest.raises(ValueError, match=r"warmup_steps \(10\) must be shorter than training \(10 steps\)"):
        build_adamw_cosine(config, groups("net"), 10)


def test_onecycle_too_short_for_its_rising_phase_is_an_error_at_build() -> None:
    with pytest.raises(ValueError, match="must exceed 1"):
        onecycle(total_steps=3)


def test_onecycle_refuses_a_checkpoint_with_another_cycle_length() -> None:
    saved = onecycle(total_steps=100)
    resumed = onecycle(total_steps=200)
    assert resumed.scheduler is not None
    assert saved.scheduler is not None
    with pytest.raises(ValueError, match="cycle is 100 steps long but this run has 200"):
        resumed.scheduler.load_state_dict(saved.scheduler.state_dict())
