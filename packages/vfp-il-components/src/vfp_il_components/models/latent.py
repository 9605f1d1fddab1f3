"""Latent blocks: Gaussian posterior / prior encoders, a categorical head, and their sampling and KL helpers."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vfp_il_components.models.mlp import MLP
from vfp_il_components.models.specs import CategoricalHeadConfig, GaussianEncoderConfig, MlpSettings

__all__ = [
    "CategoricalHead",
    "DiagonalGaussian",
    "GaussianEncoder",
    "gumbel_softmax",
    "kl_diagonal_gaussians",
    "kl_standard_normal",
    "sample_categorical",
    "soft_clamp",
]


def soft_clamp(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Smoothly bound ``x`` to ``[low, high]``: ``mid + half * tanh((x - mid) / half)`` (slope 1 at the middle)."""
    mid, half = (high + low) / 2, (high - low) / 2
    return mid + half * torch.tanh((x - mid) / half)


def kl_diagonal_gaussians(
    mean_q: torch.Tensor, log_var_q: torch.Tensor, mean_p: torch.Tensor, log_var_p: torch.Tensor
) -> torch.Tensor:
    """KL(q || p) between diagonal Gaussians, summed over the last dimension: ``(..., D) -> (...)``."""
    var_ratio = (log_var_q - log_var_p).exp()
    mean_term = (mean_q - mean_p).square() * (-log_var_p).exp()
    return 0.5 * (var_ratio + mean_term - 1.0 - (log_var_q - log_var_p)).sum(dim=-1)


def kl_standard_normal(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)), summed over the last dimension."""
    return 0.5 * (log_var.exp() + mean.square() - 1.0 - log_var).sum(dim=-1)


@dataclass(frozen=True)
class DiagonalGaussian:
    """A batch of diagonal Gaussians: ``mean`` and ``log_var`` of shape ``(B, D)``."""

    mean: torch.Tensor
    log_var: torch.Tensor

    @property
    def std(self) -> torch.Tensor:
        return (0.5 * self.log_var).exp()

    def rsample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterized sample ``mean + std * eps`` (gradients reach mean and log_var)."""
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * eps

    def kl(self, other: DiagonalGaussian | None = None) -> torch.Tensor:
        """KL(self || other) per row ``(B,)``; ``other=None`` is the standard normal."""
        if other is None:
            return kl_standard_normal(self.mean, self.log_var)
        return kl_diagonal_gaussians(self.mean, self.log_var, other.mean, other.log_var)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Log-density of ``z`` ``(B, D)`` per row ``(B,)``."""
        return -0.5 * ((z - self.mean).square() * (-self.log_var).exp() + self.log_var + math.log(2 * math.pi)).sum(
            dim=-1
        )

    def detach(self) -> DiagonalGaussian:
        return DiagonalGaussian(self.mean.detach(), self.log_var.detach())


def gumbel_softmax(
    logits: torch.Tensor, tau: float = 1.0, hard: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Gumbel-softmax sample over the last dimension.

    ``hard=True`` returns one-hot vectors whose gradient is the soft sample's (straight-through).
    """
    if tau <= 0:
        raise ValueError(f"gumbel_softmax: tau must be > 0, got {tau}")
    uniform = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=torch.float32)
    gumbel = -torch.log(-torch.log(uniform.clamp(1e-10, 1.0 - 1e-7)))
    soft = ((logits.float() + gumbel) / tau).softmax(dim=-1)
    if not hard:
        return soft.to(logits.dtype)
    one_hot = F.one_hot(soft.argmax(dim=-1), logits.shape[-1]).to(soft.dtype)
    return (one_hot + soft - soft.detach()).to(logits.dtype)


def sample_categorical(
    logits: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Class indices ``(...)`` drawn from ``softmax(logits / temperature)``; temperature 0 takes the argmax."""
    if temperature < 0:
        raise ValueError(f"sample_categorical: temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = (logits.float() / temperature).softmax(dim=-1)
    flat = torch.multinomial(probs.reshape(-1, logits.shape[-1]), 1, generator=generator)
    return flat.reshape(logits.shape[:-1])


class _ConditionedHead(nn.Module):
    """An MLP on ``[cond, flattened action chunk]`` (either may be absent)."""

    def __init__(
        self, config: MlpSettings, name: str, out_dim: int, cond_dim: int, action_dim: int, horizon: int
    ) -> None:
        super().__init__()
        if cond_dim < 0 or action_dim < 0 or horizon < 0:
            raise ValueError(f"{name}: dimensions must be >= 0, got cond_dim={cond_dim}, action_dim={action_dim}")
        if (action_dim > 0) != (horizon > 0):
            raise ValueError(f"{name}: pass action_dim and horizon together, got {action_dim} and {horizon}")
        if cond_dim == 0 and action_dim == 0:
            raise ValueError(f"{name}: needs an input: cond_dim > 0 and/or action_dim with horizon")
        self.name = name
        self.cond_dim, self.action_dim, self.horizon = cond_dim, action_dim, horizon
        self.net = MLP(config, in_dim=cond_dim + action_dim * horizon, out_dim=out_dim)

    def features(self, cond: torch.Tensor | None, actions: torch.Tensor | None) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        if self.cond_dim:
            if cond is None or cond.ndim != 2 or cond.shape[1] != self.cond_dim:
                got = None if cond is None else tuple(cond.shape)
                raise ValueError(f"{self.name}: cond must be (B, {self.cond_dim}), got {got}")
            parts.append(cond)
        elif cond is not None:
            raise ValueError(f"{self.name}: got cond, but it was built with cond_dim=0")
        if self.action_dim:
            if actions is None or actions.ndim != 3 or actions.shape[1:] != (self.horizon, self.action_dim):
                got = None if actions is None else tuple(actions.shape)
                raise ValueError(f"{self.name}: actions must be (B, {self.horizon}, {self.action_dim}), got {got}")
            parts.append(actions.flatten(1))
        elif actions is not None:
            raise ValueError(f"{self.name}: got actions, but it was built without an action input (action_dim=0)")
        if len(parts) == 2 and parts[0].shape[0] != parts[1].shape[0]:
            raise ValueError(f"{self.name}: cond and actions have different batch sizes")
        out: torch.Tensor = self.net(torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0])
        return out


class GaussianEncoder(nn.Module):
    """Diagonal Gaussian over a latent ``z``: posterior q(z | o, A) or prior p(z | o).

    An MLP maps ``[cond, flattened actions]`` to a mean and a log-variance, the latter soft-clamped
    to ``[log_var_min, log_var_max]``. Dimensions: ``latent_dim``; ``cond_dim`` and/or ``action_dim``
    with ``horizon`` (0: that input is absent).
    ``forward(cond=None (B, cond_dim), actions=None (B, H, A)) -> DiagonalGaussian``.
    """

    def __init__(
        self,
        config: GaussianEncoderConfig,
        *,
        latent_dim: int,
        cond_dim: int = 0,
        action_dim: int = 0,
        horizon: int = 0,
    ) -> None:
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"gaussian_encoder: latent_dim must be >= 1, got {latent_dim}")
        self.latent_dim = latent_dim
        self.log_var_min, self.log_var_max = config.log_var_min, config.log_var_max
        self.head = _ConditionedHead(config, "gaussian_encoder", 2 * latent_dim, cond_dim, action_dim, horizon)

    def forward(self, cond: torch.Tensor | None = None, actions: torch.Tensor | None = None) -> DiagonalGaussian:
        mean, raw_log_var = self.head.features(cond, actions).chunk(2, dim=-1)
        return DiagonalGaussian(mean, soft_clamp(raw_log_var, self.log_var_min, self.log_var_max))


class CategoricalHead(nn.Module):
    """Logits over ``num_classes`` latent classes from ``[cond, flattened actions]``.

    Dimensions: ``num_classes``; ``cond_dim`` and/or ``action_dim`` with ``horizon``.
    ``forward(cond=None, actions=None) -> logits (B, K)``; draw classes with :func:`sample_categorical`
    or differentiable one-hots with :func:`gumbel_softmax`.
    """

    def __init__(
        self,
        config: CategoricalHeadConfig,
        *,
        num_classes: int,
        cond_dim: int = 0,
        action_dim: int = 0,
        horizon: int = 0,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"categorical_head: num_classes must be >= 2, got {num_classes}")
        self.num_classes = num_classes
        self.head = _ConditionedHead(config, "categorical_head", num_classes, cond_dim, action_dim, horizon)

    def forward(self, cond: torch.Tensor | None = None, actions: torch.Tensor | None = None) -> torch.Tensor:
        return self.head.features(cond, actions)
