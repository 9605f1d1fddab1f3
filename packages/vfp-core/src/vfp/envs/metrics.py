"""Closed-loop metrics of a set of episodes (numpy only): success, return, length and the mode metrics.

The mode metrics compare the modes the policy's episodes followed with the demonstrations' mode
distribution: per-mode frequencies among the episodes classified into a mode, their entropy
normalized by ``log(num_modes)`` (1: every mode equally often, 0: a single mode), and the total
variation from the demonstrations' weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["episode_metrics", "mode_frequencies", "normalized_entropy", "total_variation"]


def mode_frequencies(modes: NDArray[np.int64], num_modes: int) -> NDArray[np.float64]:
    """Frequency of each mode among the episodes classified into a mode (``mode >= 0``); zeros if none."""
    classified = modes[(modes >= 0) & (modes < num_modes)]
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


def episode_metrics(
    *,
    success: NDArray[np.bool_],
    returns: NDArray[np.float64],
    lengths: NDArray[np.int64],
    modes: NDArray[np.int64] | None = None,
    mode_names: Sequence[str] | None = None,
    mode_weights: Sequence[float] | NDArray[Any] | None = None,
    off_manifold: NDArray[np.bool_] | None = None,
) -> dict[str, float]:
    """``success_rate``, ``mean_return``, ``mean_episode_length`` and, when the env knows its modes,
    ``mode_entropy``, ``mode_tv``, ``mode_freq/<name>``, ``off_manifold_rate`` and ``demo_mode_entropy``.

    ``off_manifold``: per episode, whether it left every demonstrated mode, as the env reported it;
    without it, the share of episodes whose mode is -1 (no demonstrated mode) is reported.
    """
    metrics = {
        "success_rate": float(np.mean(success)),
        "mean_return": float(np.mean(returns)),
        "mean_episode_length": float(np.mean(lengths)),
    }
    if modes is None or not mode_names:
        return metrics
    names = list(mode_names)
    weights = (
        np.asarray(mode_weights, dtype=np.float64)
        if mode_weights is not None
        else np.full(len(names), 1.0 / len(names))
    )
    frequencies = mode_frequencies(modes, len(names))
    off = off_manifold if off_manifold is not None else modes < 0
    metrics["off_manifold_rate"] = float(np.mean(off))
    metrics["mode_entropy"] = normalized_entropy(frequencies)
    metrics["mode_tv"] = total_variation(frequencies, weights) if frequencies.sum() > 0 else 1.0
    for name, frequency in zip(names, frequencies, strict=True):
        metrics[f"mode_freq/{name}"] = float(frequency)
    metrics["demo_mode_entropy"] = normalized_entropy(weights)
    return metrics
