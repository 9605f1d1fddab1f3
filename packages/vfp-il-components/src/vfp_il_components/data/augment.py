"""Random image augmentation of whole batches: color jitter (brightness, contrast, saturation) and blur.

One set of random parameters per sample, shared by the time steps of its observation history (as a
transform applied to LeRobot's stacked frames would be). Images are float (B, T, C, H, W) in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from vfp.protocols import Batch
from vfp_il_components.data.specs import ImageAugmentationConfig

__all__ = ["ImageAugmentation"]

_LUMA = (0.299, 0.587, 0.114)


def _factors(batch_size: int, strength: float, generator: torch.Generator | None) -> torch.Tensor:
    u = torch.rand(batch_size, generator=generator)
    return (1.0 - strength + 2.0 * strength * u).view(batch_size, 1, 1, 1, 1)


def _gaussian_kernels(sigmas: torch.Tensor, size: int) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    kernels = torch.exp(-(x[None, :] ** 2) / (2 * sigmas[:, None] ** 2))
    return kernels / kernels.sum(dim=1, keepdim=True)


class ImageAugmentation:
    """Callable applied to training batches; leaves non-image keys and pad masks untouched."""

    def __init__(self, config: ImageAugmentationConfig, image_keys: Sequence[str], seed: int | None = None) -> None:
        self.config = config
        self.image_keys = list(image_keys)
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)

    def __call__(self, batch: Batch) -> Batch:
        if not self.config.enabled:
            return batch
        out = dict(batch)
        for key in self.image_keys:
            if key in out:
                out[key] = self.augment(out[key])
        return out

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """Augment float images (B, T, C, H, W) in [0, 1]."""
        config, generator = self.config, self.generator
        b, _, channels = images.shape[:3]
        x = images
        if config.brightness > 0:
            x = x * _factors(b, config.brightness, generator)
        if config.contrast > 0:
            mean = x.mean(dim=(-3, -2, -1), keepdim=True)
            x = (x - mean) * _factors(b, config.contrast, generator) + mean
        if config.saturation > 0 and channels == 3:
            luma = torch.tensor(_LUMA, dtype=x.dtype).view(1, 1, 3, 1, 1)
            gray = (x * luma).sum(dim=2, keepdim=True)
            x = (x - gray) * _factors(b, config.saturation, generator) + gray
        x = x.clamp(0.0, 1.0)
        if config.blur_probability > 0:
            x = self._blur(x)
        return x

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        config, generator = self.config, self.generator
        b, t, c, h, w = x.shape
        chosen = torch.rand(b, generator=generator) < config.blur_probability
        if not chosen.any():
            return x
        low, high = config.blur_sigma
        sigmas = low + (high - low) * torch.rand(int(chosen.sum()), generator=generator)
        kernels = _gaussian_kernels(sigmas, config.blur_kernel)  # (n, k)
        selected = x[chosen]  # (n, T, C, H, W)
        n = selected.shape[0]
        groups = n * t * c
        flat = selected.reshape(1, groups, h, w)
        per_group = kernels.repeat_interleave(t * c, dim=0)  # (groups, k)
        pad = config.blur_kernel // 2
        flat = F.conv2d(
            F.pad(flat, (pad, pad, 0, 0), mode="replicate"), per_group.view(groups, 1, 1, -1), groups=groups
        )
        flat = F.conv2d(
            F.pad(flat, (0, 0, pad, pad), mode="replicate"), per_group.view(groups, 1, -1, 1), groups=groups
        )
        out = x.clone()
        out[chosen] = flat.view(n, t, c, h, w)
        return out
