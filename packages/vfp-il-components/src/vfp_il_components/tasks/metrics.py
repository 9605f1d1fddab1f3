"""Evaluation metrics shared by the synthetic tasks.

The mode math (frequencies, normalized entropy, total variation) is vfp-core's
(:mod:`vfp.envs.metrics`), which the engine's rollouts in env components use too; it is re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import NDArray

from vfp.envs import mode_frequencies, normalized_entropy, total_variation

__all__ = ["mode_frequencies", "normalized_entropy", "sinkhorn_distance", "summarize", "total_variation"]

SINKHORN_BLUR = 0.05


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
