"""The VFP trainers (mixture of experts and single expert) on a tiny bimodal problem."""

from __future__ import annotations

import pytest
import torch
from flow_policy_helpers import bimodal_batch, build, observations, train, vfp_experiment

from vfp_il_components.models.latent import DiagonalGaussian


@pytest.fixture(scope="module")
def trained() -> object:
    trainer = build(vfp_experiment(experts=2))
    train(trainer, steps=400)
    return trainer


def _batch(size: int = 64) -> dict[str, torch.Tensor]:
    return bimodal_batch(size, torch.Generator().manual_seed(3))


@pytest.mark.parametrize("latent", ["gaussian_encoder", "categorical_head"])
def test_loss_terms_include_a_finite_kl(latent: str) -> None:
    trainer = build(vfp_experiment(latent=latent, experts=2))
    terms, metrics = trainer.compute_losses(_batch())
    assert {"flow", "kl", "alignment", "gating/load_balance"} <= set(terms)
    assert all(torch.isfinite(value) for value in terms.values())
    assert float(metrics["kl_raw"]) > 0


@pytest.mark.parametrize("latent", ["gaussian_encoder", "categorical_head"])
def test_gradients_reach_every_component(latent: str) -> None:
    trainer = build(vfp_experiment(latent=latent, experts=2))
    terms, _ = trainer.compute_losses(_batch())
    sum(terms.values()).backward()
    for name in ("obs_encoder", "posterior", "prior", "gate", "action_decoder"):
        grads = [p.grad.abs().sum() for p in trainer.context.models[name].parameters() if p.grad is not None]
        assert grads, f"no gradient reached {name}"
        assert float(sum(grads)) > 0, f"zero gradient in {name}"


def test_every_expert_gets_gradient() -> None:
    trainer = build(vfp_experiment(experts=2))
    terms, _ = trainer.compute_losses(_batch(128))
    sum(terms.values()).backward()
    for index, expert in enumerate(trainer.decoder.experts):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in expert.parameters()), index


def test_kl_weight_warms_up_linearly() -> None:
    data = vfp_experiment(experts=1)
    data["trainer"]["latent"] = {"dim": 2, "kl_weight": 0.2, "kl_warmup_steps": 10}
    trainer = build(data)
    trainer.context.step = 4
    assert trainer.kl_weight() == pytest.approx(0.1)
    trainer.context.step = 50
    assert trainer.kl_weight() == pytest.approx(0.2)


@pytest.mark.parametrize("latent", ["gaussian_encoder", "categorical_head"])
def test_the_prior_is_stochastic(latent: str) -> None:
    trainer = build(vfp_experiment(latent=latent, experts=1))
    cond = trainer.encode_observation(observations(256, value=0.3))
    with torch.no_grad():
        z = trainer.sample_latent(cond, torch.Generator().manual_seed(0))
    assert z.shape == (256, 2)
    assert float(z.std(dim=0).max()) > 0.1


def test_prior_temperature_zero_gives_one_latent_per_observation() -> None:
    trainer = build(vfp_experiment(experts=1))
    cond = trainer.encode_observation(observations(64, value=0.3))
    z = trainer.sample_latent(cond, temperature=0.0)
    assert torch.allclose(z, z[:1].expand_as(z))


def test_samples_from_the_prior_cover_both_modes(trained: object) -> None:
    chunks = trained.sample_actions(observations(400, value=0.2), steps=1)  # type: ignore[attr-defined]
    first = chunks[:, 0, 0]
    assert (first > 0.5).float().mean() > 0.25
    assert (first < -0.5).float().mean() > 0.25


def test_one_step_samples_do_not_average_the_modes(trained: object) -> None:
    first = trained.sample_actions(observations(400), steps=1)[:, 0, 0]  # type: ignore[attr-defined]
    assert (first.abs() < 0.3).float().mean() < 0.2


def test_the_decoder_uses_the_latent(trained: object) -> None:
    """The posterior's z of a +1 chunk and of a -1 chunk decode (same noise) to the matching modes."""
    trainer = trained
    batch = _batch(200)
    cond = trainer.encode_observation(batch)  # type: ignore[attr-defined]
    positive = torch.ones_like(batch["action"])
    with torch.no_grad():
        q_plus = trainer.posterior(cond, positive)  # type: ignore[attr-defined]
        q_minus = trainer.posterior(cond, -positive)  # type: ignore[attr-defined]
        assert isinstance(q_plus, DiagonalGaussian)
        x0 = torch.randn(200, 2, 1, generator=torch.Generator().manual_seed(0))
        plus = trainer.decode(cond, q_plus.mean, steps=4, x0=x0)[:, 0, 0]  # type: ignore[attr-defined]
        minus = trainer.decode(cond, q_minus.mean, steps=4, x0=x0)[:, 0, 0]  # type: ignore[attr-defined]
    assert (plus > 0).float().mean() > 0.8
    assert (minus < 0).float().mean() > 0.8


def test_single_expert_has_no_gate() -> None:
    trainer = build(vfp_experiment(experts=1))
    assert trainer.gate is None
    assert set(trainer.context.models) == {"obs_encoder", "posterior", "prior", "action_decoder"}
    terms, _ = trainer.compute_losses(_batch())
    assert not any(name.startswith("gating") for name in terms)


def test_single_expert_samples_chunks_with_heun() -> None:
    data = vfp_experiment(experts=1)
    data["trainer"]["flow"] = {"integrator": "heun"}
    trainer = build(data)
    trainer.context.models.eval()
    assert trainer.sample_actions(observations(5), steps=2).shape == (5, 2, 1)
