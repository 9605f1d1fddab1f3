"""The ``obs_encoder`` block: a batch's observation history (state features and cameras) to one vector."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from vfp.protocols import DataInfo
from vfp_il_components.models.mlp import MLP
from vfp_il_components.models.specs import ObsEncoderConfig
from vfp_il_components.models.vision import ConvEncoder

__all__ = ["ObservationEncoder"]

PREFIX = "observation."


def _resolve_keys(requested: list[str] | None, info: DataInfo, role: str, field: str) -> list[str]:
    available = info.keys(role)
    if requested is None:
        return available
    keys: list[str] = []
    for name in requested:
        key = name if name.startswith(PREFIX) else PREFIX + name
        if key not in info.features or info.features[key].role != role:
            raise ValueError(
                f"obs_encoder: {field} names {name!r}, which is not a {role} feature of the data; "
                f"available {role} features: {available or 'none'}"
            )
        keys.append(key)
    return keys


class ObservationEncoder(nn.Module):
    """Encode ``observation.<key>`` tensors of shape ``(B, T, ...)`` into ``(B, out_dim)``.

    State features are flattened over the history (and their own dimensions) and concatenated;
    every frame of every camera goes through a :class:`ConvEncoder` (one shared, or one per camera)
    and the frame features are concatenated over the history; an MLP (``hidden_dims``,
    ``activation``... of the config) fuses everything into ``out_dim`` features. Padded history
    steps (``observation.<key>_is_pad``) are used as the data module filled them (copies of the first
    frame of the episode).

    Dimensions: ``info`` (the data's ``DataInfo``: features and ``history``). ``forward(batch)``;
    ``module.out_dim`` is the feature size, ``module.state_keys`` and ``module.image_keys`` the inputs.
    """

    def __init__(self, config: ObsEncoderConfig, *, info: DataInfo) -> None:
        super().__init__()
        if info.history < 1:
            raise ValueError(f"obs_encoder: the data's history must be >= 1, got {info.history}")
        self.history = info.history
        self.out_dim = config.out_dim
        self.state_keys = _resolve_keys(config.state_keys, info, "state", "state_keys")
        self.image_keys = _resolve_keys(config.image_keys, info, "image", "image_keys")
        if not self.state_keys and not self.image_keys:
            raise ValueError(
                "obs_encoder: no observation feature to encode (the data has none, or state_keys and image_keys "
                f"are both empty); data features: {sorted(info.features)}"
            )
        self.shapes = {key: tuple(info.features[key].shape) for key in [*self.state_keys, *self.image_keys]}
        state_width = sum(math.prod(self.shapes[key]) for key in self.state_keys)
        self.image_encoders = nn.ModuleDict()
        self.share_image_encoder = config.share_image_encoder
        if self.image_keys:
            shapes = {self.shapes[key] for key in self.image_keys}
            if config.share_image_encoder:
                if len(shapes) > 1:
                    raise ValueError(
                        f"obs_encoder: cameras {self.image_keys} have different shapes {sorted(shapes)}; "
                        "set share_image_encoder: false to give each camera its own encoder"
                    )
                self.image_encoders["shared"] = ConvEncoder(config.image_encoder, image_shape=shapes.pop())
            else:
                for key in self.image_keys:
                    self.image_encoders[self._module_name(key)] = ConvEncoder(
                        config.image_encoder, image_shape=self.shapes[key]
                    )
        image_width = len(self.image_keys) * config.image_encoder.out_dim
        self.fusion = MLP(config, in_dim=self.history * (state_width + image_width), out_dim=config.out_dim)

    @staticmethod
    def _module_name(key: str) -> str:
        return key.removeprefix(PREFIX).replace(".", "_")

    def _encoder(self, key: str) -> nn.Module:
        return self.image_encoders["shared" if self.share_image_encoder else self._module_name(key)]

    def _read(self, batch: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
        if key not in batch:
            raise KeyError(f"obs_encoder: the batch has no {key!r}; it has {sorted(batch)}")
        value = batch[key]
        expected = (self.history, *self.shapes[key])
        if value.ndim != len(expected) + 1 or tuple(value.shape[1:]) != expected:
            raise ValueError(
                f"obs_encoder: batch[{key!r}] must be (B, {', '.join(map(str, expected))}) (B, T, ...), "
                f"got {tuple(value.shape)}"
            )
        return value

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        for key in self.state_keys:
            value = self._read(batch, key)
            parts.append(value.reshape(value.shape[0], -1))
        for key in self.image_keys:
            value = self._read(batch, key)
            features = self._encoder(key)(value)  # (B, T, F)
            parts.append(features.reshape(value.shape[0], -1))
        fused = torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]
        out: torch.Tensor = self.fusion(fused)
        return out
