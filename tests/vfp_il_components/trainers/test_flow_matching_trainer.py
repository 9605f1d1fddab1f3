"""The naive flow-matching trainer on a tiny bimodal problem (seeded, loose thresholds)."""

from __future__ import annotations

import pytest
import torch
from flow_policy_helpers import bimodal_batch, build, naive_experiment, observations, train


@pytest.fixture(scope="module")
def trained() -> object:
    trainer = build(naive_experiment(flow={"num_steps": 20}))
    train(trainer, steps=500)
    return trainer


def test_flow_loss_is_the_only_term_and_is_finite() -> None:
    trainer = build(naive_experiment())
    terms, _ = trainer.compute_losses(bimodal_batch(32, torch.Generator().manual_seed(0)))
    assert list(terms) == ["flow"]
    assert torch.isfinite(terms["flow"])


def test_many_steps_produce_both_modes(trained: object) -> None:
    torch.manual_seed(0)
    chunks = trained.sample_actions(observations(400), steps=20)  # type: ignore[attr-defined]
    first = chunks[:, 0, 0]
    assert (first > 0.5).float().mean() > 0.3
    assert (first < -0.5).float().mean() > 0.3
    assert (first.abs() < 0.3).float().mean() < 0.15


def test_one_step_averages_the_modes(trained: object) -> None:
    torch.manual_seed(0)
    first = trained.sample_actions(observations(400), steps=1)[:, 0, 0]  # type: ignore[attr-defined]
    assert float(first.abs().mean()) < 0.5


@pytest.mark.parametrize("integrator", ["euler", "heun"])
def test_samples_have_the_chunk_shape(integrator: str) -> None:
    trainer = build(naive_experiment(flow={"integrator": integrator, "num_steps": 3}))
    trainer.context.models.eval()
    assert trainer.sample_actions(observations(7)).shape == (7, 2, 1)


def test_heun_evaluates_the_network_twice_per_step() -> None:
    trainer = build(naive_experiment(flow={"integrator": "heun"}))
    calls = []
    trainer.velocity.register_forward_hook(lambda *args: calls.append(1))
    trainer.sample_actions(observations(3), steps=3)
    assert len(calls) == 6
