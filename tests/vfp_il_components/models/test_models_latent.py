"""Latent blocks: Gaussian encoders and KL helpers, the categorical head and its samplers."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from vfp_il_components.models.latent import (
    CategoricalHead,
    DiagonalGaussian,
    GaussianEncoder,
    gumbel_softmax,
    kl_diagonal_gaussians,
    kl_standard_normal,
    sample_categorical,
    soft_clamp,
)
from vfp_il_components.models.specs import CategoricalHeadConfig, GaussianEncoderConfig

BATCH, LATENT, COND, HORIZON, ACTION = 8, 3, 5, 4, 2


def gaussian_config(**settings: object) -> GaussianEncoderConfig:
    return GaussianEncoderConfig(type="gaussian_encoder", **{"hidden_dims": [32], **settings})


def random_gaussian(seed: int) -> DiagonalGaussian:
    generator = torch.Generator().manual_seed(seed)
    return DiagonalGaussian(
        torch.randn(BATCH, LATENT, generator=generator), torch.randn(BATCH, LATENT, generator=generator)
    )


def as_torch(gaussian: DiagonalGaussian) -> Independent:
    return Independent(Normal(gaussian.mean, gaussian.std), 1)


def test_kl_of_identical_gaussians_is_zero() -> None:
    q = random_gaussian(0)
    assert torch.allclose(q.kl(q), torch.zeros(BATCH), atol=1e-6)


def test_kl_matches_torch_distributions() -> None:
    q, p = random_gaussian(0), random_gaussian(1)
    assert torch.allclose(q.kl(p), kl_divergence(as_torch(q), as_torch(p)), rtol=1e-5, atol=1e-5)
    assert torch.allclose(
        kl_diagonal_gaussians(q.mean, q.log_var, p.mean, p.log_var), kl_divergence(as_torch(q), as_torch(p)), rtol=1e-5
    )


def test_kl_to_the_standard_normal_matches_torch_distributions() -> None:
    q = random_gaussian(2)
    standard = Independent(Normal(torch.zeros(BATCH, LATENT), torch.ones(BATCH, LATENT)), 1)
    assert torch.allclose(q.kl(), kl_divergence(as_torch(q), standard), rtol=1e-5)
    assert torch.allclose(kl_standard_normal(q.mean, q.log_var), q.kl(), rtol=1e-6)


def test_log_prob_matches_torch_distributions() -> None:
    q = random_gaussian(3)
    z = torch.randn(BATCH, LATENT)
    assert torch.allclose(q.log_prob(z), as_torch(q).log_prob(z), rtol=1e-5)


def test_rsample_has_the_distribution_moments() -> None:
    q = DiagonalGaussian(torch.full((20000, 1), 2.0), torch.full((20000, 1), math.log(0.25)))
    z = q.rsample(torch.Generator().manual_seed(0))
    assert z.mean().item() == pytest.approx(2.0, abs=0.02)
    assert z.std().item() == pytest.approx(0.5, abs=0.02)


def test_rsample_passes_gradients_to_mean_and_log_variance() -> None:
    mean = torch.zeros(BATCH, LATENT, requires_grad=True)
    log_var = torch.zeros(BATCH, LATENT, requires_grad=True)
    DiagonalGaussian(mean, log_var).rsample().square().sum().backward()
    assert mean.grad is not None
    assert log_var.grad is not None
    assert log_var.grad.abs().sum() > 0


def test_soft_clamp_bounds_values_smoothly() -> None:
    x = torch.tensor([-1e4, -20.0, -3.0, 0.0, 1.0, 20.0, 1e4])
    y = soft_clamp(x, -10.0, 4.0)
    assert (y >= -10.0).all()
    assert (y <= 4.0).all()
    assert (y[1:-1] > -10.0).all()
    assert (y[1:-1] < 4.0).all()
    assert y[2].item() == pytest.approx(-3.0)  # the middle of the range is kept
    assert torch.all(y[1:] >= y[:-1])


def test_posterior_maps_condition_and_actions_to_a_gaussian() -> None:
    encoder = GaussianEncoder(gaussian_config(), latent_dim=LATENT, cond_dim=COND, action_dim=ACTION, horizon=HORIZON)
    q = encoder(torch.randn(BATCH, COND), torch.randn(BATCH, HORIZON, ACTION))
    assert q.mean.shape == q.log_var.shape == (BATCH, LATENT)
    assert q.rsample().shape == (BATCH, LATENT)


def test_posterior_depends_on_the_actions() -> None:
    torch.manual_seed(0)
    encoder = GaussianEncoder(gaussian_config(), latent_dim=LATENT, cond_dim=COND, action_dim=ACTION, horizon=HORIZON)
    cond = torch.randn(BATCH, COND)
    first = encoder(cond, torch.randn(BATCH, HORIZON, ACTION))
    second = encoder(cond, torch.randn(BATCH, HORIZON, ACTION))
    assert not torch.allclose(first.mean, second.mean, atol=1e-4)


def test_log_variance_stays_within_its_bounds() -> None:
    encoder = GaussianEncoder(gaussian_config(log_var_min=-3.0, log_var_max=1.0), latent_dim=LATENT, cond_dim=COND)
    with torch.no_grad():
        encoder.head.net.output_head.bias.fill_(1e4)
        high = encoder(torch.randn(BATCH, COND)).log_var
        encoder.head.net.output_head.bias.fill_(-1e4)
        low = encoder(torch.randn(BATCH, COND)).log_var
    assert torch.allclose(high, torch.full_like(high, 1.0))
    assert torch.allclose(low, torch.full_like(low, -3.0))


def test_prior_without_action_input_rejects_actions() -> None:
    prior = GaussianEncoder(gaussian_config(), latent_dim=LATENT, cond_dim=COND)
    with pytest.raises(ValueError, match="without an action input"):
        prior(torch.randn(BATCH, COND), torch.randn(BATCH, HORIZON, ACTION))


def test_encoder_without_input_is_an_error() -> None:
    with pytest.raises(ValueError, match="needs an input"):
        GaussianEncoder(gaussian_config(), latent_dim=LATENT)


def test_missing_condition_is_an_error() -> None:
    prior = GaussianEncoder(gaussian_config(), latent_dim=LATENT, cond_dim=COND)
    with pytest.raises(ValueError, match=r"cond must be \(B, 5\), got None"):
        prior()


def test_gaussian_prior_learns_mean_and_spread_by_maximum_likelihood() -> None:
    """z = 2 * c + 0.5 * noise: a stochastic prior recovers both the mean map and the noise level."""
    torch.manual_seed(0)
    prior = GaussianEncoder(gaussian_config(hidden_dims=[32]), latent_dim=1, cond_dim=1)
    optimizer = torch.optim.Adam(prior.parameters(), lr=1e-2)
    for _ in range(300):
        c = torch.randn(256, 1)
        z = 2 * c + 0.5 * torch.randn(256, 1)
        loss = -prior(c).log_prob(z).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        q = prior(torch.linspace(-1, 1, 11)[:, None])
    assert torch.allclose(q.mean[:, 0], 2 * torch.linspace(-1, 1, 11), atol=0.2)
    assert torch.allclose(q.std, torch.full_like(q.std, 0.5), atol=0.1)


def test_categorical_head_gives_logits_per_class() -> None:
    head = CategoricalHead(CategoricalHeadConfig(type="categorical_head"), num_classes=6, cond_dim=COND)
    assert head(torch.randn(BATCH, COND)).shape == (BATCH, 6)


def test_categorical_head_needs_two_classes() -> None:
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        CategoricalHead(CategoricalHeadConfig(type="categorical_head"), num_classes=1, cond_dim=COND)


def test_categorical_head_learns_classes() -> None:
    """The class is the quadrant of a 2-D condition."""
    torch.manual_seed(0)
    head = CategoricalHead(CategoricalHeadConfig(type="categorical_head", hidden_dims=[32]), num_classes=4, cond_dim=2)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        c = torch.randn(n, 2)
        return c, (c[:, 0] > 0).long() * 2 + (c[:, 1] > 0).long()

    for _ in range(150):
        c, labels = sample(128)
        loss = torch.nn.functional.cross_entropy(head(c), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    c, labels = sample(512)
    with torch.no_grad():
        accuracy = (head(c).argmax(dim=-1) == labels).float().mean()
    assert accuracy > 0.9


def test_hard_gumbel_softmax_gives_one_hots_with_soft_gradients() -> None:
    logits = torch.randn(BATCH, 5, requires_grad=True)
    sample = gumbel_softmax(logits, tau=0.5, hard=True, generator=torch.Generator().manual_seed(0))
    values = sample.detach()
    assert torch.allclose(values.sum(dim=-1), torch.ones(BATCH))
    assert torch.allclose(values, values.round(), atol=1e-6)
    assert torch.equal(values.round().sum(dim=-1), torch.ones(BATCH))
    (sample * torch.arange(5.0)).sum().backward()
    assert logits.grad is not None
    assert logits.grad.abs().sum() > 0


def test_gumbel_softmax_draws_classes_with_the_softmax_frequencies() -> None:
    logits = torch.log(torch.tensor([0.6, 0.3, 0.1])).expand(30000, 3)
    samples = gumbel_softmax(logits, hard=True, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(samples.mean(dim=0), torch.tensor([0.6, 0.3, 0.1]), atol=0.015)


def test_sample_categorical_follows_the_tempered_softmax() -> None:
    logits = torch.log(torch.tensor([0.6, 0.3, 0.1])).expand(30000, 3)
    indices = sample_categorical(logits, generator=torch.Generator().manual_seed(0))
    frequencies = torch.bincount(indices, minlength=3).float() / 30000
    assert torch.allclose(frequencies, torch.tensor([0.6, 0.3, 0.1]), atol=0.015)
    sharp = sample_categorical(logits, temperature=0.25, generator=torch.Generator().manual_seed(0))
    assert (sharp == 0).float().mean() > 0.9


def test_sample_categorical_at_temperature_zero_takes_the_argmax() -> None:
    logits = torch.randn(BATCH, 4)
    assert torch.equal(sample_categorical(logits, temperature=0.0), logits.argmax(dim=-1))
