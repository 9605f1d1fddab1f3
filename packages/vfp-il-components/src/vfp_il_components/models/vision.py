"""The ``conv_encoder`` block: a small convolutional image encoder trained from scratch."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from vfp_il_components.models.layers import activation
from vfp_il_components.models.specs import ConvEncoderSettings

__all__ = ["ConvEncoder", "SpatialSoftmax"]


class SpatialSoftmax(nn.Module):
    """Learned keypoints: a 1x1 conv to K maps, a softmax over each map, expected (x, y) in [-1, 1].

    ``(N, C, h, w) -> (N, 2K)`` (Levine et al., 2016).
    """

    def __init__(self, in_channels: int, num_keypoints: int) -> None:
        super().__init__()
        self.keypoints = nn.Conv2d(in_channels, num_keypoints, kernel_size=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        maps = self.keypoints(features)
        n, k, h, w = maps.shape
        attention = maps.flatten(2).float().softmax(dim=-1).view(n, k, h, w)
        ys = torch.linspace(-1.0, 1.0, h, device=maps.device)
        xs = torch.linspace(-1.0, 1.0, w, device=maps.device)
        expected_x = (attention.sum(dim=2) * xs).sum(dim=-1)
        expected_y = (attention.sum(dim=3) * ys).sum(dim=-1)
        return torch.cat([expected_x, expected_y], dim=-1).to(features.dtype)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


class ConvEncoder(nn.Module):
    """Conv stack (conv, norm, activation per layer), then spatial-softmax keypoints or global pooling,
    then a linear layer: images ``(..., C, H, W) -> (..., out_dim)``.

    Dimensions: ``image_shape`` ``(C, H, W)``; ``config.out_dim`` is the feature size (``module.out_dim``).
    Images are float tensors (the batches' images are in [0, 1]); uint8 images are scaled to [0, 1].
    Nothing is downloaded: the weights start from scratch.
    """

    def __init__(self, config: ConvEncoderSettings, *, image_shape: Sequence[int]) -> None:
        super().__init__()
        shape = tuple(int(v) for v in image_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"conv_encoder: image_shape must be (C, H, W) with positive sizes, got {image_shape}")
        self.image_shape: tuple[int, int, int] = (shape[0], shape[1], shape[2])
        self.out_dim = config.out_dim
        layers: list[nn.Module] = []
        in_channels, height, width = self.image_shape
        padding = config.kernel_size // 2
        for channels, stride in zip(config.channels, config.strides, strict=True):
            layers += [
                nn.Conv2d(in_channels, channels, config.kernel_size, stride=stride, padding=padding),
                _norm(config.norm, channels),
                activation(config.activation),
            ]
            in_channels = channels
            height = (height + 2 * padding - config.kernel_size) // stride + 1
            width = (width + 2 * padding - config.kernel_size) // stride + 1
        self.convs = nn.Sequential(*layers)
        self.feature_map_shape = (in_channels, height, width)
        self.pool: nn.Module
        if config.pooling == "spatial_softmax":
            self.pool = SpatialSoftmax(in_channels, config.num_keypoints)
            pooled = 2 * config.num_keypoints
        else:
            adaptive = nn.AdaptiveAvgPool2d(1) if config.pooling == "avg" else nn.AdaptiveMaxPool2d(1)
            self.pool = nn.Sequential(adaptive, nn.Flatten(1))
            pooled = in_channels
        self.head = nn.Linear(pooled, config.out_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim < 4 or tuple(images.shape[-3:]) != self.image_shape:
            raise ValueError(
                f"conv_encoder: images must be (..., {', '.join(map(str, self.image_shape))}) (C, H, W), "
                f"got {tuple(images.shape)}"
            )
        leading = images.shape[:-3]
        if not images.is_floating_point():
            images = images.float() / 255.0
        features = self.convs(images.reshape(-1, *self.image_shape))
        out: torch.Tensor = self.head(self.pool(features))
        return out.reshape(*leading, self.out_dim)
