"""Random image augmentation of whole batches: random shift (pad + crop), color jitter (brightness,
contrast, saturation) and blur, as batched tensor operations on the batch's device.

One set of random parameters per sample, shared by the time steps of its observation history (as a
transform applied to LeRobot's stacked frames would be). Images are float (B, T, C, H, W) in [0, 1].
The parameters are drawn on the CPU from a generator (seeded per batch by the data modules, see
``batch_seed``) and moved to the images' device, so CPU and CUDA draw the same values and a resumed run
draws what the uninterrupted run drew.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vfp.protocols import Batch
from vfp_il_components.data.specs import ImageAugmentationConfig

__all__ = ["ImageAugmentation", "batch_seed"]

_LUMA = (0.299, 0.587, 0.114)


def batch_seed(seed: int, frames: np.ndarray) -> int:
    """A 63-bit seed from ``seed`` and a batch's sample indices (in order): the same batch always draws the
    same augmentation, whichever process builds it and whether or not the run was resumed."""
    digest = hashlib.blake2b(np.ascontiguousarray(frames, dtype=np.int64).tobytes(), digest_size=8, key=b"vfp-aug")
    digest.update(int(seed).to_bytes(8, "little", signed=True))
    return int.from_bytes(digest.digest(), "little") & (2**63 - 1)


def _factors(batch_size: int, strength: float, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    u = torch.rand(batch_size, generator=generator)
    return (1.0 - strength + 2.0 * strength * u).view(batch_size, 1, 1, 1, 1).to(like.device, like.dtype)


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

    def __call__(self, batch: Batch, seed: int | None = None) -> Batch:
        """Augment the image keys of ``batch``; ``seed`` (e.g. ``batch_seed``) fixes the draws, else the
        augmentation's own generator (or torch's global one) is used."""
        if not self.config.enabled:
            return batch
        generator = torch.Generator().manual_seed(seed) if seed is not None else self.generator
        out = dict(batch)
        for key in self.image_keys:
            if key in out:
                out[key] = self.augment(out[key], generator)
        return out

    def augment(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment float images (B, T, C, H, W) in [0, 1] (on any device; draws come from ``generator``)."""
        config = self.config
        generator = generator if generator is not None else self.generator
        b, _, channels = images.shape[:3]
        x = images
        if config.crop_padding > 0:
            x = _random_shift(x, config.crop_padding, generator)
        if config.brightness > 0:
            x = x * _factors(b, config.brightness, generator, x)
        if config.contrast > 0:
            mean = x.mean(dim=(-3, -2, -1), keepdim=True)
            x = (x - mean) * _factors(b, config.contrast, generator, x) + mean
        if config.saturation > 0 and channels == 3:
            luma = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 1, 3, 1, 1)
            gray = (x * luma).sum(dim=2, keepdim=True)
            x = (x - gray) * _factors(b, config.saturation, generator, x) + gray
        x = x.clamp(0.0, 1.0)
        if config.blur_probability > 0:
            x = self._blur(x, generator)
        return x

    def _blur(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        config = self.config
        b, t, c, h, w = x.shape
        chosen = torch.rand(b, generator=generator) < config.blur_probability
        if not chosen.any():
            return x
        low, high = config.blur_sigma
        sigmas = low + (high - low) * torch.rand(int(chosen.sum()), generator=generator)
        kernels = _gaussian_kernels(sigmas, config.blur_kernel).to(x.device, x.dtype)  # (n, k)
        chosen = chosen.to(x.device)
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


def _random_shift(x: torch.Tensor, padding: int, generator: torch.Generator | None) -> torch.Tensor:
    """Shift each sample's images by up to ``padding`` pixels (edge pixels repeat), one shift per sample."""
    b, t, c, h, w = x.shape
    shifts = torch.randint(0, 2 * padding + 1, (b, 2), generator=generator).to(x.device)
    padded = F.pad(x.reshape(b, t * c, h, w), (padding, padding, padding, padding), mode="replicate")
    rows = (shifts[:, 0, None] + torch.arange(h, device=x.device)[None]).view(b, 1, h, 1)
    cols = (shifts[:, 1, None] + torch.arange(w, device=x.device)[None]).view(b, 1, 1, w)
    padded = padded.gather(2, rows.expand(b, t * c, h, w + 2 * padding))
    return padded.gather(3, cols.expand(b, t * c, h, w)).view(b, t, c, h, w)
