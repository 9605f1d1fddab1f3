"""The ``sinkhorn`` loss: entropic optimal transport between action-chunk point clouds (geomloss)."""

from __future__ import annotations

import importlib.util
import math

import torch
from geomloss import SamplesLoss
from torch import nn

from vfp_il_components.losses.specs import SinkhornLossConfig

__all__ = ["SinkhornLoss", "keops_available", "resolve_backend"]

KEOPS_BACKENDS = ("online", "multiscale")


def keops_available() -> bool:
    """Whether pykeops (needed by geomloss's online and multiscale backends) is installed."""
    return importlib.util.find_spec("pykeops") is not None


def resolve_backend(backend: str) -> str:
    """The geomloss backend to use: ``auto`` becomes ``tensorized`` when pykeops is missing.

    geomloss's own ``auto`` switches to the pykeops-only ``online`` backend for large problems, which
    would fail at the first big batch on a machine without pykeops.
    """
    if backend in KEOPS_BACKENDS and not keops_available():
        raise ValueError(
            f"sinkhorn loss: backend {backend!r} needs the pykeops library, which is not installed. "
            "Install it (pip install pykeops) or set backend: tensorized (or auto)."
        )
    if backend == "auto" and not keops_available():
        return "tensorized"
    return backend


class SinkhornLoss(nn.Module):
    """Sinkhorn OT loss between generated and expert action chunks, in float32 even under autocast.

    Each chunk (H, A) of a batch is one point of R^(H*A) with weight 1/B. With ``state_weight > 0`` the
    points are ``[chunk, sqrt(state_weight) * state]``, so that samples are matched on actions and
    observation state jointly; the states are then required. ``p``, ``blur``, ``scaling``, ``debias``,
    ``reach`` and ``backend`` go to geomloss unchanged (cost |x - y| for p=1, |x - y|^2 / 2 for p=2).
    """

    def __init__(self, config: SinkhornLossConfig) -> None:
        super().__init__()
        self.config = config
        self.backend = resolve_backend(config.backend)
        self.samples_loss = SamplesLoss(
            "sinkhorn",
            p=config.p,
            blur=config.blur,
            scaling=config.scaling,
            debias=config.debias,
            reach=config.reach,
            backend=self.backend,
        )

    def forward(
        self,
        generated: torch.Tensor,
        expert: torch.Tensor,
        generated_state: torch.Tensor | None = None,
        expert_state: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Weighted OT loss between ``generated`` (B, H, A) and ``expert`` (B', H, A) chunks.

        ``generated_state`` and ``expert_state`` ((B, ...) and (B', ...), for example the observation
        state history) are used only when ``state_weight > 0``.
        """
        with torch.autocast(device_type=generated.device.type, enabled=False):
            x = self._points(generated, generated_state, "generated")
            y = self._points(expert, expert_state, "expert")
            if x.shape[1] != y.shape[1]:
                raise ValueError(
                    f"sinkhorn loss: generated points have {x.shape[1]} features but expert points have "
                    f"{y.shape[1]} (chunks {tuple(generated.shape[1:])} vs {tuple(expert.shape[1:])})"
                )
            value = self.samples_loss(x, y)
        return value * self.config.weight

    def _points(self, chunks: torch.Tensor, state: torch.Tensor | None, role: str) -> torch.Tensor:
        if chunks.ndim < 2:
            raise ValueError(f"sinkhorn loss: {role} chunks must be (B, H, A), got shape {tuple(chunks.shape)}")
        points = chunks.float().reshape(chunks.shape[0], -1)
        if self.config.state_weight == 0.0:
            return points
        if state is None:
            raise ValueError(
                f"sinkhorn loss: state_weight is {self.config.state_weight} but no {role}_state was given; "
                "pass the observation states or set state_weight: 0"
            )
        if state.shape[0] != chunks.shape[0]:
            raise ValueError(
                f"sinkhorn loss: {role}_state has batch size {state.shape[0]}, its chunks {chunks.shape[0]}"
            )
        scaled_state = state.float().reshape(state.shape[0], -1) * math.sqrt(self.config.state_weight)
        return torch.cat([points, scaled_state], dim=1)
