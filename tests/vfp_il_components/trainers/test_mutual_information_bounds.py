"""InfoNCE and MINE estimates against pairs whose mutual information is known, and the mode probe."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vfp_il_components.trainers.mutual_information import (
    MineMovingAverage,
    dv_bound,
    infonce_bound,
    mine_surrogate,
    probe_modes,
    separable_scores,
)

RHO = 0.8
DIMS = 2
TRUE_MI = -0.5 * math.log(1 - RHO**2) * DIMS  # 1.02 nats: two independent coordinates, each with correlation rho


def correlated_pairs(batch: int, rho: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(batch, DIMS, generator=generator)
    noise = torch.randn(batch, DIMS, generator=generator)
    return x, rho * x + math.sqrt(1 - rho**2) * noise


def embedding() -> nn.Module:
    return nn.Sequential(nn.Linear(DIMS, 32), nn.SiLU(), nn.Linear(32, 16))


def estimate(estimator: str, rho: float, steps: int = 250) -> float:
    """Train a separable critic with ``estimator`` on fresh batches, then average its bound on held-out batches."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    g, h = embedding(), embedding()
    optimizer = torch.optim.Adam([*g.parameters(), *h.parameters()], lr=1e-3)
    average = MineMovingAverage(0.99)
    for _ in range(steps):
        x, y = correlated_pairs(256, rho, generator)
        scores = separable_scores(g(x), h(y))
        objective = infonce_bound(scores) if estimator == "infonce" else mine_surrogate(scores, average)
        optimizer.zero_grad()
        (-objective).backward()
        optimizer.step()
    bound = infonce_bound if estimator == "infonce" else dv_bound
    with torch.no_grad():
        values = [
            float(bound(separable_scores(g(x), h(y))))
            for x, y in (correlated_pairs(512, rho, generator) for _ in range(8))
        ]
    return sum(values) / len(values)


def test_infonce_recovers_the_mutual_information_of_correlated_gaussians() -> None:
    assert estimate("infonce", RHO) == pytest.approx(TRUE_MI, abs=0.2)


def test_mine_recovers_the_mutual_information_of_correlated_gaussians() -> None:
    assert estimate("mine", RHO) == pytest.approx(TRUE_MI, abs=0.3)


def test_infonce_is_near_zero_for_independent_variables() -> None:
    assert abs(estimate("infonce", 0.0, steps=100)) < 0.08


def test_mine_is_near_zero_for_independent_variables() -> None:
    assert abs(estimate("mine", 0.0, steps=100)) < 0.15


def test_infonce_never_exceeds_log_batch() -> None:
    scores = torch.eye(64) * 1e4  # a perfect critic
    assert float(infonce_bound(scores)) == pytest.approx(math.log(64), abs=1e-4)


def test_dv_bound_exceeds_log_batch_for_a_perfect_critic() -> None:
    assert float(dv_bound(torch.eye(64) * 20.0)) > math.log(64)


def test_bounds_reject_non_square_scores() -> None:
    with pytest.raises(ValueError, match="square"):
        infonce_bound(torch.zeros(4, 3))


def test_mine_moving_average_starts_at_the_first_value_then_averages() -> None:
    average = MineMovingAverage(0.5)
    assert float(average.update(torch.tensor(2.0))) == 2.0
    assert float(average.update(torch.tensor(4.0))) == 3.0


def test_mode_probe_finds_modes_that_the_latent_encodes() -> None:
    generator = torch.Generator().manual_seed(0)
    modes = torch.randint(0, 2, (1000,), generator=generator)
    latents = torch.randn(1000, 4, generator=generator) * 0.3 + modes[:, None].float() * 2.0
    result = probe_modes(latents, modes, 2, generator=generator)
    assert result["accuracy"] > 0.97
    assert result["mi_lower_bound_nats"] > 0.6  # H(mode) = log 2 = 0.69


def test_mode_probe_reports_chance_for_a_latent_independent_of_the_mode() -> None:
    generator = torch.Generator().manual_seed(1)
    modes = torch.randint(0, 2, (1000,), generator=generator)
    result = probe_modes(torch.randn(1000, 4, generator=generator), modes, 2, generator=generator)
    assert result["accuracy"] < 0.58
    assert result["mi_lower_bound_nats"] < 0.03


def test_mode_probe_on_one_hot_latents_with_a_class_unused_in_the_fitting_half() -> None:
    # a categorical VFP latent: classes 0-2 name the mode; class 3 appears only in the held-out half
    generator = torch.Generator().manual_seed(2)
    modes = torch.randint(0, 2, (1000,), generator=generator)
    classes = modes * 2 + torch.randint(0, 2, (1000,), generator=generator).clamp_max(1 - modes)  # 0,1 -> mode 0
    classes[500:510] = 3
    latents = torch.nn.functional.one_hot(classes, 4).float()
    result = probe_modes(latents, modes, 2, generator=generator)
    assert result["accuracy"] > 0.97
    assert result["cross_entropy_nats"] < 0.1  # was thousands of nats: the unused class was divided by a ~0 std
    assert result["mi_lower_bound_nats"] > 0.55
