"""Rasterize the 2D scenes of the synthetic tasks into small RGB images (numpy, vectorized)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

BACKGROUND = (245, 245, 245)


@dataclass(frozen=True)
class Disk:
    """Filled disks of one color, one per image: ``centers`` is (N, 2) in world coordinates."""

    centers: NDArray[np.float64]
    radius: float
    color: tuple[int, int, int]
    visible: NDArray[np.bool_] | None = None


def render_disks(disks: Sequence[Disk], num_images: int, image_size: int, extent: float) -> NDArray[np.uint8]:
    """Draw ``disks`` (later ones on top) on ``num_images`` canvases covering ``[-extent, extent]^2``.

    Returns uint8 images (N, H, W, 3); image row 0 is the top (largest y).
    """
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8 pixels, got {image_size}")
    coords = (np.arange(image_size) + 0.5) / image_size * 2 * extent - extent
    xs = coords[None, None, :]
    ys = coords[::-1][None, :, None]
    images = np.empty((num_images, image_size, image_size, 3), dtype=np.uint8)
    images[:] = np.asarray(BACKGROUND, dtype=np.uint8)
    pixel = 2 * extent / image_size
    for disk in disks:
        cx = disk.centers[:, 0][:, None, None]
        cy = disk.centers[:, 1][:, None, None]
        radius = max(disk.radius, 0.75 * pixel)  # never vanish below one pixel
        inside = (xs - cx) ** 2 + (ys - cy) ** 2 <= radius**2
        if disk.visible is not None:
            inside &= disk.visible[:, None, None]
        images[inside] = np.asarray(disk.color, dtype=np.uint8)
    return images
