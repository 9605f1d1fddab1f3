"""Evaluation metrics shared by the synthetic tasks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import NDArray

SINKHORN_BLUR = 0.05


def mode_frequencies(modes: NDArray[np.int64], num_modes: int) -> NDArray[np.float64]:
    """Frequency of each mode among the episodes classified into a mode (``mode >= 0``); zeros if none."""
    classified = modes[modes >= 0]
    counts = np.bincount(classified, minlength=num_modes).astype(np.float64)
    total = counts.sum()
    return counts / total if total > 0 else counts


def normalized_entropy(frequencies: NDArray[np.float64]) -> float:
    """Entropy of a mode distribution divided by ``log(num_modes)``: 1 is uniform, 0 is a single mode."""
    if len(frequencies) < 2 or frequencies.sum() <= 0:
        return 0.0
    p = frequencies[frequencies > 0]
    return max(0.0, float(-(p * np.log(p)).sum() / np.log(len(frequencies))))


def total_variation(p: NDArray[np.float64], q: NDArray[np.float64]) -> float:
    """Total-variation distance between two distributions over the same modes."""
    return float(0.5 * np.abs(p - q).sum())


def sinkhorn_distance(x: NDArray[np.float64], y: NDArray[np.float64], blur: float = SINKHORN_BLUR) -> float:
    """Debiased Sinkhorn divergence (geomloss, p=2, cost |x-y|²/2) between two point clouds (N, D), (M, D)."""
    from geomloss import SamplesLoss

    loss = SamplesLoss("sinkhorn", p=2, blur=blur, debias=True, scaling=0.7, backend="tensorized")
    value = loss(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32))
    return max(float(value), 0.0)


def summarize(
    *,
    success: NDArray[np.bool_],
    off_manifold: NDArray[np.bool_],
    modes: NDArray[np.int64],
    mode_names: Sequence[str],
    mode_weights: NDArray[np.float64],
    sinkhorn: float | None,
) -> dict[str, float]:
    """The metric dictionary every task's ``evaluate`` returns."""
    frequencies = mode_frequencies(modes, len(mode_names))
    metrics = {
        "success_rate": float(success.mean()),
        "off_manifold_rate": float(off_manifold.mean()),
        "mode_entropy": normalized_entropy(frequencies),
        "mode_tv": total_variation(frequencies, mode_weights) if frequencies.sum() > 0 else 1.0,
    }
    for name, frequency in zip(mode_names, frequencies, strict=True):
        metrics[f"mode_freq/{name}"] = float(frequency)
    if sinkhorn is not None:
        metrics["sinkhorn"] = sinkhorn
    return metrics
