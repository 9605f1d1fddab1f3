"""The sinkhorn loss against independent references: POT's Sinkhorn solver and exact OT (ot.emd2)."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from vfp_il_components.losses.sinkhorn import SinkhornLoss, keops_available
from vfp_il_components.losses.specs import SinkhornLossConfig


def make(**settings: object) -> SinkhornLoss:
    return SinkhornLoss(SinkhornLossConfig(type="sinkhorn", **settings))


def chunks(batch: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 4, 2, generator=generator) + shift


def cost_matrix(x: torch.Tensor, y: torch.Tensor, p: int) -> np.ndarray:
    """geomloss's ground cost: |x - y| for p=1, |x - y|^2 / 2 for p=2."""
    xs, ys = x.reshape(len(x), -1).double().numpy(), y.reshape(len(y), -1).double().numpy()
    return ot.dist(xs, ys, metric="euclidean") if p == 1 else ot.dist(xs, ys, metric="sqeuclidean") / 2


def pot_entropic_ot(x: torch.Tensor, y: torch.Tensor, p: int, blur: float) -> float:
    """OT_eps(a, b) = <P, C> + eps KL(P | a x b) with POT's converged log-domain Sinkhorn plan."""
    a, b = np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y))
    cost, eps = cost_matrix(x, y, p), blur**p
    plan = ot.sinkhorn(a, b, cost, eps, method="sinkhorn_log", stopThr=1e-12, numItermax=100_000)
    kl = float((plan * np.log(plan / np.outer(a, b) + 1e-300)).sum())
    return float((plan * cost).sum()) + eps * kl


def exact_ot(x: torch.Tensor, y: torch.Tensor, p: int) -> float:
    a, b = np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y))
    return float(ot.emd2(a, b, cost_matrix(x, y, p)))


@pytest.mark.parametrize(("p", "blur"), [(1, 1.0), (1, 0.5), (2, 1.0), (2, 0.5)])
def test_raw_value_matches_pot_sinkhorn(p: int, blur: float) -> None:
    x, y = chunks(20, seed=0), chunks(25, seed=1, shift=0.5)
    value = make(p=p, blur=blur, debias=False, scaling=0.99)(x, y).item()
    assert value == pytest.approx(pot_entropic_ot(x, y, p, blur), rel=2e-3)


@pytest.mark.parametrize("p", [1, 2])
def test_divergence_approaches_exact_ot_as_blur_shrinks(p: int) -> None:
    x, y = chunks(30, seed=2), chunks(30, seed=3, shift=0.5)
    exact = exact_ot(x, y, p)
    errors = [abs(make(p=p, blur=blur, scaling=0.99)(x, y).item() - exact) / exact for blur in (1.0, 0.1, 0.01)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 2e-3


def test_p_selects_the_ground_cost_as_theory_says() -> None:
    # A translation by t is an optimal map: W1 = |t| and, for the cost |x - y|^2 / 2, OT = |t|^2 / 2
    # (the debiased divergence with p=2 gives exactly |t|^2 / 2 at any blur).
    x = chunks(50, seed=4)
    shift = torch.zeros(4, 2)
    shift[0, 0] = 3.0
    y = x + shift
    assert make(p=1, blur=0.05, scaling=0.9)(x, y).item() == pytest.approx(3.0, rel=1e-2)
    assert make(p=2, blur=0.05, scaling=0.9)(x, y).item() == pytest.approx(4.5, rel=1e-4)
    assert make(p=2, blur=1.0, scaling=0.9)(x, y).item() == pytest.approx(4.5, rel=1e-4)


def test_debiased_divergence_is_zero_for_identical_sets() -> None:
    x = chunks(32, seed=5)
    assert make(debias=True)(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)


def test_raw_entropic_cost_is_positive_for_identical_sets() -> None:
    x = chunks(32, seed=5)
    assert make(debias=False, blur=0.5)(x, x.clone()).item() > 0.01


def test_scaling_is_passed_through_and_trades_accuracy() -> None:
    x, y = chunks(20, seed=6), chunks(20, seed=7, shift=0.5)
    reference = pot_entropic_ot(x, y, 2, 0.5)
    coarse = abs(make(blur=0.5, debias=False, scaling=0.5)(x, y).item() - reference)
    fine = abs(make(blur=0.5, debias=False, scaling=0.99)(x, y).item() - reference)
    assert fine < coarse / 10


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("identical", [False, True])
def test_gradients_are_finite(p: int, identical: bool) -> None:
    expert = chunks(16, seed=8)
    generated = (expert.clone() if identical else chunks(16, seed=9)).requires_grad_(True)
    make(p=p, blur=0.05)(generated, expert).backward()
    assert generated.grad is not None
    assert torch.isfinite(generated.grad).all()


def test_gradient_descent_moves_generated_chunks_toward_experts() -> None:
    expert = chunks(32, seed=10, shift=2.0)
    generated = chunks(32, seed=11).requires_grad_(True)
    loss = make(blur=0.1)
    before = loss(generated, expert).item()
    optimizer = torch.optim.SGD([generated], lr=10.0)
    for _ in range(20):
        optimizer.zero_grad()
        loss(generated, expert).backward()
        optimizer.step()
    assert loss(generated, expert).item() < 0.1 * before


def test_computed_in_float32_under_autocast() -> None:
    x, y = chunks(64, seed=12).reshape(64, 8), chunks(64, seed=13).reshape(64, 8)
    loss = make(blur=0.05)
    reference = loss(x, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = loss(x, y)
    assert under_autocast.dtype == torch.float32
    torch.testing.assert_close(under_autocast, reference, rtol=1e-6, atol=0.0)


def test_half_precision_inputs_are_upcast() -> None:
    x, y = chunks(16, seed=14), chunks(16, seed=15)
    value = make()(x.bfloat16(), y.bfloat16())
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, make()(x.bfloat16().float(), y.bfloat16().float()))


def test_weight_scales_the_loss() -> None:
    x, y = chunks(16, seed=16), chunks(16, seed=17)
    torch.testing.assert_close(make(weight=0.5)(x, y), 0.5 * make()(x, y))


def test_state_joins_the_cost_with_its_weight() -> None:
    # Same actions, states differing by a translation of 2: p=2 adds state_weight * |2|^2 / 2.
    actions = chunks(40, seed=18)
    state = torch.randn(40, 2, 3, generator=torch.Generator().manual_seed(19))
    shifted = state.clone()
    shifted[:, 0, 0] += 2.0
    value = make(state_weight=0.25)(actions, actions.clone(), state, shifted)
    assert value.item() == pytest.approx(0.25 * 4.0 / 2, rel=1e-4)


def test_state_weight_without_states_is_an_error() -> None:
    with pytest.raises(ValueError, match="no generated_state was given"):
        make(state_weight=1.0)(chunks(4, seed=0), chunks(4, seed=1))


def test_mismatched_point_dimensions_are_reported() -> None:
    with pytest.raises(ValueError, match="8 features but expert points have 6"):
        make()(torch.zeros(4, 4, 2), torch.zeros(4, 3, 2))


def test_keops_backends_without_pykeops_are_a_clear_error() -> None:
    if keops_available():
        pytest.skip("pykeops is installed")
    with pytest.raises(ValueError, match="needs the pykeops library"):
        make(backend="online")


def test_auto_backend_stays_tensorized_without_pykeops() -> None:
    if keops_available():
        pytest.skip("pykeops is installed")
    assert make(backend="auto").samples_loss.backend == "tensorized"
