"""Normalization statistics and the (un)normalize helpers trainers use on sampled actions.

Statistics are a ``NormalizationStats`` mapping: feature key (``action``, ``observation.state``, ...) to
``mean``, ``std``, ``min`` and ``max`` tensors of the feature's per-step shape. Modes:

- ``mean_std``: ``(x - mean) / (std + eps)``
- ``min_max``: ``2 (x - min) / (max - min + eps) - 1`` (to [-1, 1])
- ``none``: unchanged

``unnormalize`` is the exact inverse of ``normalize``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import torch

from vfp.protocols import NormalizationStats

__all__ = ["EPS", "MODES", "compute_stats", "normalize", "unnormalize"]

EPS: Final = 1e-8
MODES: Final = ("mean_std", "min_max", "none")


def compute_stats(values: torch.Tensor) -> dict[str, torch.Tensor]:
    """``mean``, ``std`` (population), ``min`` and ``max`` over the first dimension of ``values`` (N, ...)."""
    if values.shape[0] == 0:
        raise ValueError("cannot compute statistics of an empty feature")
    data = values.double()
    return {
        "mean": data.mean(dim=0).float(),
        "std": data.std(dim=0, unbiased=False).float(),
        "min": data.amin(dim=0).float(),
        "max": data.amax(dim=0).float(),
    }


def _feature_stats(stats: Mapping[str, Mapping[str, torch.Tensor]], key: str) -> Mapping[str, torch.Tensor]:
    if key not in stats:
        raise KeyError(f"no normalization statistics for {key!r}; available: {sorted(stats)}")
    return stats[key]


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown normalization mode {mode!r}; expected one of {', '.join(MODES)}")


def normalize(
    stats: NormalizationStats | Mapping[str, Mapping[str, torch.Tensor]], key: str, x: torch.Tensor, mode: str
) -> torch.Tensor:
    """Normalize ``x`` (any leading dimensions, then the feature's shape) with the statistics of ``key``."""
    _check_mode(mode)
    if mode == "none":
        return x
    s = _feature_stats(stats, key)
    if mode == "mean_std":
        mean, std = s["mean"].to(x), s["std"].to(x)
        return (x - mean) / (std + EPS)
    low, high = s["min"].to(x), s["max"].to(x)
    return 2.0 * (x - low) / (high - low + EPS) - 1.0


def unnormalize(
    stats: NormalizationStats | Mapping[str, Mapping[str, torch.Tensor]], key: str, x: torch.Tensor, mode: str
) -> torch.Tensor:
    """Map normalized values of ``key`` (e.g. sampled actions) back to dataset units."""
    _check_mode(mode)
    if mode == "none":
        return x
    s = _feature_stats(stats, key)
    if mode == "mean_std":
        mean, std = s["mean"].to(x), s["std"].to(x)
        return x * (std + EPS) + mean
    low, high = s["min"].to(x), s["max"].to(x)
    return (x + 1.0) / 2.0 * (high - low + EPS) + low
