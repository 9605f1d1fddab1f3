"""The shared flow-matching machinery: time distributions, the straight path and the integrators."""

from __future__ import annotations

import math

import pytest
import torch

from vfp_il_components.flow import integrate, masked_mse, sample_times, straight_path
from vfp_il_components.settings import FlowSettings

CPU = torch.device("cpu")


def test_straight_path_runs_from_noise_to_the_actions() -> None:
    x0, actions = torch.randn(3, 4, 2), torch.randn(3, 4, 2)
    start, velocity = straight_path(x0, actions, torch.zeros(3))
    end, _ = straight_path(x0, actions, torch.ones(3))
    middle, _ = straight_path(x0, actions, torch.full((3,), 0.25))
    assert torch.allclose(start, x0)
    assert torch.allclose(end, actions)
    assert torch.allclose(middle, 0.75 * x0 + 0.25 * actions)
    assert torch.allclose(velocity, actions - x0)


def test_one_euler_step_of_the_target_velocity_lands_on_the_actions() -> None:
    x0, actions = torch.randn(5, 3, 2), torch.randn(5, 3, 2)
    out = integrate(lambda x, t: actions - x0, x0, steps=1)
    assert torch.allclose(out, actions)


@pytest.mark.parametrize(("integrator", "growth"), [("euler", lambda h: 1 + h), ("heun", lambda h: 1 + h + h * h / 2)])
def test_integrators_follow_their_update_rule_on_exponential_growth(integrator: str, growth) -> None:  # type: ignore[no-untyped-def]
    x0 = torch.ones(2, 1, 1, dtype=torch.float64)
    steps = 4
    out = integrate(lambda x, t: x, x0, steps=steps, integrator=integrator)
    assert out.shape == x0.shape
    assert torch.allclose(out, x0 * growth(1 / steps) ** steps)


def test_heun_is_closer_to_the_exact_flow_than_euler() -> None:
    x0 = torch.ones(1, 1, 1, dtype=torch.float64)
    exact = math.e
    euler = float(integrate(lambda x, t: x, x0, 3, "euler"))
    heun = float(integrate(lambda x, t: x, x0, 3, "heun"))
    assert abs(heun - exact) < abs(euler - exact) / 5


def test_time_dependent_velocity_gets_the_step_start_times() -> None:
    seen: list[float] = []

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen.append(float(t[0]))
        return torch.zeros_like(x)

    integrate(velocity, torch.zeros(2, 1, 1), steps=4)
    assert seen == pytest.approx([0.0, 0.25, 0.5, 0.75])


def test_integrate_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="steps must be >= 1"):
        integrate(lambda x, t: x, torch.zeros(1, 1, 1), steps=0)
    with pytest.raises(ValueError, match="unknown integrator 'rk4'"):
        integrate(lambda x, t: x, torch.zeros(1, 1, 1), steps=1, integrator="rk4")


def test_uniform_times_cover_the_unit_interval() -> None:
    t = sample_times(FlowSettings(), 20000, CPU, torch.Generator().manual_seed(0))
    assert t.min() > 0
    assert t.max() < 1
    assert float(t.mean()) == pytest.approx(0.5, abs=0.01)
    assert float(t.std()) == pytest.approx(math.sqrt(1 / 12), abs=0.01)


def test_beta_times_have_the_beta_mean() -> None:
    torch.manual_seed(0)
    t = sample_times(FlowSettings(time_distribution="beta", beta_a=1.0, beta_b=3.0), 20000, CPU)
    assert float(t.mean()) == pytest.approx(0.25, abs=0.01)


def test_logit_normal_times_have_the_sigmoid_median() -> None:
    settings = FlowSettings(time_distribution="logit_normal", logit_normal_mean=1.0, logit_normal_std=0.5)
    t = sample_times(settings, 20000, CPU, torch.Generator().manual_seed(0))
    assert float(t.median()) == pytest.approx(1 / (1 + math.exp(-1.0)), abs=0.01)
    assert float(t.std()) < 0.15


def test_masked_mse_ignores_padded_steps() -> None:
    predicted = torch.zeros(2, 3, 1)
    target = torch.tensor([[[1.0], [1.0], [100.0]], [[2.0], [2.0], [2.0]]])
    is_pad = torch.tensor([[False, False, True], [False, False, False]])
    assert masked_mse(predicted, target, is_pad).tolist() == pytest.approx([1.0, 4.0])
