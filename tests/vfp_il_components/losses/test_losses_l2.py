"""The l2 loss: masked mean squared error with a choice of reduction, scaled by its weight."""

from __future__ import annotations

import pytest
import torch

from vfp_il_components.losses.l2 import L2Loss
from vfp_il_components.losses.specs import L2LossConfig


def make(**settings: object) -> L2Loss:
    return L2Loss(L2LossConfig(type="l2", **settings))


def test_mean_without_mask_equals_torch_mse() -> None:
    generator = torch.Generator().manual_seed(0)
    pred, target = torch.randn(4, 6, 3, generator=generator), torch.randn(4, 6, 3, generator=generator)
    torch.testing.assert_close(make()(pred, target), torch.nn.functional.mse_loss(pred, target))


def test_padded_steps_do_not_change_the_mean() -> None:
    pred, target = torch.zeros(2, 4, 3), torch.ones(2, 4, 3)
    target[:, 2:] = 100.0  # large errors only on the padded steps
    is_pad = torch.tensor([[False, False, True, True], [False, False, True, True]])
    assert make()(pred, target, is_pad).item() == pytest.approx(1.0)


def test_mean_divides_by_unpadded_elements_only() -> None:
    pred, target = torch.zeros(1, 4, 2), torch.full((1, 4, 2), 2.0)
    is_pad = torch.tensor([[False, True, True, True]])
    assert make()(pred, target, is_pad).item() == pytest.approx(4.0)  # not 4 * 2 / 8


def test_sum_reduction_adds_unpadded_squared_errors() -> None:
    pred, target = torch.zeros(1, 3, 2), torch.ones(1, 3, 2)
    is_pad = torch.tensor([[False, False, True]])
    assert make(reduction="sum")(pred, target, is_pad).item() == pytest.approx(4.0)


def test_none_reduction_keeps_shape_and_zeroes_padding() -> None:
    pred, target = torch.zeros(2, 3, 2), torch.full((2, 3, 2), 3.0)
    is_pad = torch.tensor([[False, False, True], [True, False, False]])
    out = make(reduction="none")(pred, target, is_pad)
    assert out.shape == (2, 3, 2)
    assert out[0, 2].eq(0).all()
    assert out[1, 0].eq(0).all()
    assert out[0, 0].eq(9).all()


def test_nan_in_padded_steps_does_not_leak() -> None:
    pred, target = torch.zeros(1, 2, 2), torch.ones(1, 2, 2)
    target[0, 1] = float("nan")
    loss = make()(pred, target, torch.tensor([[False, True]]))
    assert loss.item() == pytest.approx(1.0)


def test_all_padded_batch_gives_zero_not_nan() -> None:
    loss = make()(torch.zeros(1, 2, 2), torch.ones(1, 2, 2), torch.ones(1, 2, dtype=torch.bool))
    assert loss.item() == 0.0


def test_weight_scales_the_loss() -> None:
    pred, target = torch.zeros(2, 3), torch.ones(2, 3)
    assert make(weight=0.25)(pred, target).item() == pytest.approx(0.25)


def test_gradient_ignores_padded_predictions() -> None:
    pred = torch.zeros(1, 3, 2, requires_grad=True)
    make()(pred, torch.ones(1, 3, 2), torch.tensor([[False, False, True]])).backward()
    assert pred.grad is not None
    assert pred.grad[0, 2].eq(0).all()
    assert pred.grad[0, 0].ne(0).all()


def test_mismatched_shapes_are_reported() -> None:
    with pytest.raises(ValueError, match=r"pred has shape \(2, 3\) but target has \(2, 4\)"):
        make()(torch.zeros(2, 3), torch.zeros(2, 4))


def test_mask_of_wrong_shape_is_reported() -> None:
    with pytest.raises(ValueError, match="is_pad has shape"):
        make()(torch.zeros(2, 3, 1), torch.zeros(2, 3, 1), torch.zeros(2, 4, dtype=torch.bool))
