"""The moe_gating loss: Switch load balancing, router z-loss and the entropy term, each with its weight."""

from __future__ import annotations

import math

import pytest
import torch

from vfp_il_components.losses.moe import MoEGatingLoss
from vfp_il_components.losses.specs import MoEGatingLossConfig

EXPERTS = 4


def make(**settings: object) -> MoEGatingLoss:
    return MoEGatingLoss(MoEGatingLossConfig(type="moe_gating", **settings))


def confident_logits(choices: list[int], margin: float = 20.0) -> torch.Tensor:
    """Logits that send sample i to expert ``choices[i]`` with probability ~1."""
    return margin * torch.nn.functional.one_hot(torch.tensor(choices), EXPERTS).float()


def balance(logits: torch.Tensor, **kwargs: torch.Tensor) -> float:
    return make()(logits, **kwargs)["load_balance"].item()


def test_balance_is_one_at_uniform_routing() -> None:
    assert balance(confident_logits([0, 1, 2, 3] * 4)) == pytest.approx(1.0, abs=1e-6)


def test_balance_grows_as_routing_collapses_and_is_minimal_at_uniform() -> None:
    # From uniform use (4 samples each) to everything on expert 0.
    routings = [[0] * (4 + 3 * k) + [1] * (4 - k) + [2] * (4 - k) + [3] * (4 - k) for k in range(5)]
    values = [balance(confident_logits(choices)) for choices in routings]
    assert values == sorted(values)
    assert len(set(values)) == len(values)
    assert values[0] == pytest.approx(1.0, abs=1e-6)
    assert values[-1] == pytest.approx(EXPERTS, rel=1e-6)


def test_explicit_assignments_replace_the_top_k_of_the_logits() -> None:
    logits = confident_logits([0] * 8)  # all probability on expert 0
    assert balance(logits) == pytest.approx(EXPERTS, rel=1e-6)
    assert balance(logits, top_k_indices=torch.ones(8, 1, dtype=torch.long)) == pytest.approx(0.0, abs=1e-6)


def test_top_k_counts_every_chosen_expert() -> None:
    # Each sample puts ~1/2 on experts 0 and 1: top-2 sends half the assignments to each.
    logits = torch.tensor([[10.0, 10.0, -10.0, -10.0]] * 6)
    value = make(top_k=2)(logits)["load_balance"].item()
    assert value == pytest.approx(EXPERTS * (0.5 * 0.5 + 0.5 * 0.5), rel=1e-5)


def test_leading_dimensions_are_flattened() -> None:
    logits = torch.randn(3, 5, EXPERTS, generator=torch.Generator().manual_seed(0))
    flat = make(z_loss_weight=1.0, entropy_weight=1.0)(logits.reshape(15, EXPERTS))
    nested = make(z_loss_weight=1.0, entropy_weight=1.0)(logits)
    for name, value in flat.items():
        torch.testing.assert_close(nested[name], value)


def test_descent_on_the_balance_loss_spreads_a_collapsed_router() -> None:
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(64, 8, generator=generator)
    torch.manual_seed(1)
    router = torch.nn.Linear(8, EXPERTS)
    with torch.no_grad():
        router.bias.copy_(torch.tensor([3.0, 0.0, 0.0, 0.0]))  # starts with expert 0 overloaded
    loss = make()
    optimizer = torch.optim.SGD(router.parameters(), lr=0.5)
    before = loss(router(features))["load_balance"].item()
    for _ in range(100):
        optimizer.zero_grad()
        loss(router(features))["load_balance"].backward()
        optimizer.step()
    usage = torch.bincount(router(features).argmax(-1), minlength=EXPERTS).float() / 64
    assert loss(router(features))["load_balance"].item() < before
    assert usage.max().item() < 0.5


def test_z_loss_is_mean_squared_logsumexp() -> None:
    value = make(balance_weight=0.0, z_loss_weight=1.0)(torch.zeros(5, EXPERTS))["z_loss"]
    assert value.item() == pytest.approx(math.log(EXPERTS) ** 2)


def test_z_loss_grows_with_logit_scale() -> None:
    logits = torch.randn(16, EXPERTS, generator=torch.Generator().manual_seed(2))
    loss = make(balance_weight=0.0, z_loss_weight=1.0)
    assert loss(10 * logits)["z_loss"].item() > loss(logits)["z_loss"].item()


def test_entropy_is_zero_for_confident_balanced_routing() -> None:
    value = make(balance_weight=0.0, entropy_weight=1.0)(confident_logits([0, 1, 2, 3] * 2))["entropy"]
    assert value.item() == pytest.approx(0.0, abs=1e-6)


def test_entropy_is_one_when_every_sample_shares_the_same_gate() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0, 0.0]]).repeat(8, 1)
    value = make(balance_weight=0.0, entropy_weight=1.0)(logits)["entropy"]
    assert value.item() == pytest.approx(1.0, abs=1e-6)


def test_entropy_prefers_confident_samples_at_equal_usage() -> None:
    loss = make(balance_weight=0.0, entropy_weight=1.0)
    confident = loss(confident_logits([0, 1, 2, 3] * 2, margin=5.0))["entropy"]
    hesitant = loss(confident_logits([0, 1, 2, 3] * 2, margin=1.0))["entropy"]
    assert confident.item() < hesitant.item()


def test_each_term_has_its_weight_times_the_loss_weight() -> None:
    logits = torch.randn(12, EXPERTS, generator=torch.Generator().manual_seed(3))
    unit = make(balance_weight=1.0, z_loss_weight=1.0, entropy_weight=1.0)(logits)
    weighted = make(weight=2.0, balance_weight=0.5, z_loss_weight=0.1, entropy_weight=3.0)(logits)
    torch.testing.assert_close(weighted["load_balance"], 2.0 * 0.5 * unit["load_balance"])
    torch.testing.assert_close(weighted["z_loss"], 2.0 * 0.1 * unit["z_loss"])
    torch.testing.assert_close(weighted["entropy"], 2.0 * 3.0 * unit["entropy"])


def test_terms_with_zero_weight_are_left_out() -> None:
    assert set(make(z_loss_weight=0.0, entropy_weight=0.0)(torch.zeros(4, EXPERTS))) == {"load_balance"}


def test_gradients_are_finite_for_saturated_logits() -> None:
    logits = confident_logits([0] * 8, margin=100.0).requires_grad_(True)
    terms = make(z_loss_weight=1.0, entropy_weight=1.0)(logits)
    sum(terms.values()).backward()
    assert logits.grad is not None
    assert torch.isfinite(logits.grad).all()


def test_single_expert_is_an_error() -> None:
    with pytest.raises(ValueError, match="E >= 2 experts"):
        make()(torch.zeros(4, 1))


def test_assignments_of_the_wrong_shape_are_an_error() -> None:
    with pytest.raises(ValueError, match="top_k_indices has shape"):
        make()(torch.zeros(4, EXPERTS), top_k_indices=torch.zeros(5, 1, dtype=torch.long))


def test_assignments_out_of_range_are_an_error() -> None:
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\]"):
        make()(torch.zeros(4, EXPERTS), top_k_indices=torch.full((4, 1), 4))
