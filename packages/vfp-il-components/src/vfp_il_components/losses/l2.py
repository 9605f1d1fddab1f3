"""The ``l2`` loss: mean squared error that leaves padded steps out."""

from __future__ import annotations

import torch
from torch import nn

from vfp_il_components.losses.specs import L2LossConfig

__all__ = ["L2Loss"]


class L2Loss(nn.Module):
    """Squared error between ``pred`` and ``target``, with padded steps excluded.

    ``mean`` divides by the number of unpadded elements (not by all elements, which would shrink the
    loss of batches with much padding); a batch that is entirely padding gives 0.
    """

    def __init__(self, config: L2LossConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, pred: torch.Tensor, target: torch.Tensor, is_pad: torch.Tensor | None = None) -> torch.Tensor:
        """Weighted loss; ``is_pad`` (B, H) bool marks padded steps (True: excluded)."""
        if pred.shape != target.shape:
            raise ValueError(f"l2 loss: pred has shape {tuple(pred.shape)} but target has {tuple(target.shape)}")
        squared = (pred - target.to(pred.dtype)).square()
        if is_pad is None:
            valid = torch.ones_like(squared)
        else:
            if tuple(is_pad.shape) != tuple(pred.shape[: is_pad.ndim]):
                raise ValueError(
                    f"l2 loss: is_pad has shape {tuple(is_pad.shape)}, expected the leading dimensions of pred "
                    f"{tuple(pred.shape[: max(is_pad.ndim, 1)])} (True marks a padded step)"
                )
            keep = ~is_pad.bool().reshape(*is_pad.shape, *([1] * (squared.ndim - is_pad.ndim)))
            squared = torch.where(keep, squared, torch.zeros_like(squared))  # where, not *: NaN padding stays out
            valid = keep.expand_as(squared).to(squared.dtype)
        if self.config.reduction == "sum":
            reduced = squared.sum()
        elif self.config.reduction == "mean":
            reduced = squared.sum() / valid.sum().clamp_min(1.0)
        else:
            reduced = squared
        return reduced * self.config.weight
