"""Light registration module of the loss components (config models only, no torch import).

Implementations live in ``l2.py``, ``sinkhorn.py`` and ``moe.py`` and are imported only when a
loss is built. Every loss returns values already multiplied by its ``weight``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vfp import ComponentKind, ComponentSpec, LossConfig

__all__ = ["SPECS", "L2LossConfig", "MoEGatingLossConfig", "SinkhornLossConfig"]


class L2LossConfig(LossConfig):
    """Mean squared error between predictions and targets, ignoring padded steps.

    ``forward(pred, target, is_pad=None)``: ``is_pad`` is a boolean (B, H) mask (True marks a padded
    step, excluded from the loss), as in the batches' ``<key>_is_pad`` entries.
    """

    reduction: Literal["mean", "sum", "none"] = Field(
        "mean",
        description=(
            "mean: average over the unpadded elements; sum: their sum; none: the element-wise squared "
            "errors with padded steps set to 0."
        ),
    )


class SinkhornLossConfig(LossConfig):
    """Entropic optimal transport between generated and expert action chunks (geomloss ``SamplesLoss``).

    ``forward(generated, expert, generated_state=None, expert_state=None)``: each chunk (H, A) of a
    batch is one point of R^(H*A); the loss compares the two point clouds of the batch.
    """

    p: Literal[1, 2] = Field(2, description="Ground cost: 1 for |x - y|, 2 for |x - y|^2 / 2.")
    blur: float = Field(
        0.05,
        gt=0.0,
        le=1e6,
        description="Entropic regularization scale sigma; epsilon = blur^p (same units as the points).",
    )
    scaling: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description=(
            "Ratio between successive blur values of the epsilon-scaling descent (higher: slower, more accurate)."
        ),
    )
    debias: bool = Field(
        True,
        description="Sinkhorn divergence OT(a,b) - OT(a,a)/2 - OT(b,b)/2 (0 for identical sets) instead of OT(a,b).",
    )
    backend: Literal["auto", "tensorized", "online", "multiscale"] = Field(
        "auto",
        description=(
            "geomloss backend; online and multiscale need pykeops. auto picks tensorized when pykeops is not installed."
        ),
    )
    reach: float | None = Field(
        None, gt=0.0, le=1e6, description="Unbalanced OT: scale of the marginal constraints (null: balanced OT)."
    )
    state_weight: float = Field(
        0.0,
        ge=0.0,
        le=1e6,
        description=(
            "Joint cost over actions and observation state: points are [actions, sqrt(state_weight) * state], so "
            "the squared distance is |da|^2 + state_weight * |ds|^2. 0 compares actions only."
        ),
    )


class MoEGatingLossConfig(LossConfig):
    """Regularizers of a mixture-of-experts router, returned as a dict of weighted terms.

    ``forward(gate_logits (..., E), top_k_indices=None (..., k))``: terms with a weight of 0 are left out.
    ``load_balance`` (Switch Transformer): E * sum_e f_e * P_e, f_e the fraction of assignments to expert
    e and P_e its mean router probability; 1 at uniform routing. ``z_loss``: mean squared logsumexp of
    the logits. ``entropy``: (log E - H(mean gate) + mean per-sample H(gate)) / log E, in [0, 1]: 0 when
    every sample picks one expert confidently and the experts are used equally.
    """

    balance_weight: float = Field(1.0, ge=0.0, description="Weight of the Switch load-balancing term.")
    z_loss_weight: float = Field(0.0, ge=0.0, description="Weight of the router z-loss.")
    entropy_weight: float = Field(0.0, ge=0.0, description="Weight of the entropy term.")
    top_k: int = Field(
        1, ge=1, description="Experts per sample used for the load fractions when no top_k_indices are given."
    )


SPECS: list[ComponentSpec] = [
    ComponentSpec(
        ComponentKind.LOSS,
        "l2",
        L2LossConfig,
        "vfp_il_components.losses.l2:L2Loss",
        "Mean squared error honouring padding masks.",
    ),
    ComponentSpec(
        ComponentKind.LOSS,
        "sinkhorn",
        SinkhornLossConfig,
        "vfp_il_components.losses.sinkhorn:SinkhornLoss",
        "Entropic optimal transport between generated and expert action chunks (geomloss).",
    ),
    ComponentSpec(
        ComponentKind.LOSS,
        "moe_gating",
        MoEGatingLossConfig,
        "vfp_il_components.losses.moe:MoEGatingLoss",
        "Mixture-of-experts router regularizers: load balancing, z-loss, entropy.",
    ),
]
