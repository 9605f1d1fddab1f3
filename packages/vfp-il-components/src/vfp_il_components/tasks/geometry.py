"""Vectorized 2D geometry for the point-mass tasks: polylines, distances, motion."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def sample_polyline(points: Array, spacing: float, count: int) -> Array:
    """Points every ``spacing`` along each polyline, starting one step after its first vertex.

    ``points`` is (B, P, 2); the result is (B, count, 2). Samples past the end stay at the last vertex.
    """
    segments = np.diff(points, axis=1)  # (B, P-1, 2)
    lengths = np.linalg.norm(segments, axis=-1)  # (B, P-1)
    cumulative = np.concatenate([np.zeros_like(lengths[:, :1]), np.cumsum(lengths, axis=1)], axis=1)  # (B, P)
    arc = np.minimum(spacing * np.arange(1, count + 1)[None, :], cumulative[:, -1:])  # (B, count)
    segment = np.sum(arc[:, :, None] > cumulative[:, None, 1:], axis=-1)
    segment = np.minimum(segment, lengths.shape[1] - 1)  # (B, count)
    rows = np.arange(points.shape[0])[:, None]
    seg_start = cumulative[rows, segment]
    seg_length = lengths[rows, segment]
    fraction = np.divide(arc - seg_start, seg_length, out=np.zeros_like(arc), where=seg_length > 1e-12)
    fraction = np.clip(fraction, 0.0, 1.0)
    return points[rows, segment] + fraction[..., None] * segments[rows, segment]


def point_segment_distance(p: Array, a: Array, b: Array) -> Array:
    """Distance from points ``p`` to segments ``[a, b]`` (broadcasting over leading dimensions)."""
    p, a, b = np.broadcast_arrays(p, a, b)
    ab = b - a
    denominator = np.sum(ab * ab, axis=-1)
    t = np.divide(np.sum((p - a) * ab, axis=-1), denominator, out=np.zeros_like(denominator), where=denominator > 0)
    closest = a + np.clip(t, 0.0, 1.0)[..., None] * ab
    return np.linalg.norm(p - closest, axis=-1)


def point_polyline_distance(p: Array, points: Array) -> Array:
    """Distance from ``p`` (B, 2) to the polylines ``points`` (B, P, 2)."""
    distances = point_segment_distance(p[:, None, :], points[:, :-1], points[:, 1:])
    return distances.min(axis=1)


def move_towards(position: Array, target: Array, max_step: float) -> Array:
    """One simulator step: move at most ``max_step`` towards ``target``."""
    delta = target - position
    norm = np.linalg.norm(delta, axis=-1, keepdims=True)
    scale = np.minimum(1.0, np.divide(max_step, norm, out=np.ones_like(norm), where=norm > 0))
    return position + delta * scale
