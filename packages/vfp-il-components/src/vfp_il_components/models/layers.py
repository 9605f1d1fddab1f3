"""Small layers shared by the model blocks: activations, time embeddings, input checks."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "TimeEmbedding", "activation", "as_time", "check_last_dim", "sinusoidal_features"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "mish": nn.Mish,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}


def activation(name: str) -> nn.Module:
    """A new activation module by its config name (see ``specs.Activation``)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}") from None


def sinusoidal_features(t: torch.Tensor, dim: int, scale: float = 1000.0, max_period: float = 10000.0) -> torch.Tensor:
    """Sine and cosine features of ``scale * t`` at ``dim / 2`` geometric frequencies: ``(B,) -> (B, dim)``."""
    half = dim // 2
    frequencies = torch.exp(
        -math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / max(half, 1)
    )
    angles = (scale * t.float())[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def as_time(t: torch.Tensor | float, batch: int, device: torch.device, owner: str) -> torch.Tensor:
    """Flow times as a ``(B,)`` float tensor; accepts a number, ``(B,)`` or ``(B, 1)``."""
    if not isinstance(t, torch.Tensor):
        return torch.full((batch,), float(t), device=device)
    if t.ndim == 0:
        return t.expand(batch).float()
    if t.ndim == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.ndim != 1 or t.shape[0] != batch:
        raise ValueError(f"{owner}: t must be a number, (B,) or (B, 1) with B={batch}, got shape {tuple(t.shape)}")
    return t.float()


def check_last_dim(tensor: torch.Tensor, expected: int, owner: str, name: str) -> None:
    """Raise a clear error when ``tensor``'s last dimension is not ``expected``."""
    if tensor.ndim == 0 or tensor.shape[-1] != expected:
        raise ValueError(f"{owner}: {name} must have last dimension {expected}, got shape {tuple(tensor.shape)}")


class TimeEmbedding(nn.Module):
    """Flow time to a vector: sinusoidal features, then ``Linear -> act -> Linear`` (``(B,) -> (B, dim)``)."""

    def __init__(self, dim: int, scale: float = 1000.0, activation_name: str = "silu") -> None:
        super().__init__()
        self.dim = dim
        self.scale = scale
        self.linear_in = nn.Linear(dim, 2 * dim)
        self.act = activation(activation_name)
        self.linear_out = nn.Linear(2 * dim, dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        features = sinusoidal_features(t, self.dim, self.scale).to(self.linear_in.weight.dtype)
        out: torch.Tensor = self.linear_out(self.act(self.linear_in(features)))
        return out
