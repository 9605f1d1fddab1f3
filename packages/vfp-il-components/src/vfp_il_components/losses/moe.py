"""The ``moe_gating`` loss: load balancing, z-loss and entropy regularizers of a mixture-of-experts router."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vfp_il_components.losses.specs import MoEGatingLossConfig

__all__ = ["MoEGatingLoss", "entropy_term", "load_balance_term", "z_loss_term"]


def load_balance_term(probs: torch.Tensor, assignments: torch.Tensor) -> torch.Tensor:
    """Switch Transformer balance loss ``E * sum_e f_e * P_e`` for (N, E) probabilities and (N, k) expert indices.

    ``f_e`` (fraction of the N*k assignments that go to expert e) carries no gradient; ``P_e`` (mean
    probability of e) does, which pushes probability away from overloaded experts. 1 at uniform routing.
    """
    num_experts = probs.shape[-1]
    counts = F.one_hot(assignments, num_experts).to(probs.dtype).sum(dim=(0, 1))
    fractions = counts / counts.sum()
    return num_experts * (fractions * probs.mean(dim=0)).sum()


def z_loss_term(logits: torch.Tensor) -> torch.Tensor:
    """Router z-loss (ST-MoE): mean squared logsumexp of the (N, E) logits; keeps them small."""
    return torch.logsumexp(logits, dim=-1).square().mean()


def entropy_term(logits: torch.Tensor) -> torch.Tensor:
    """``(log E - H(mean gate) + mean_n H(gate_n)) / log E`` in [0, 1] for (N, E) logits.

    Low when the batch-mean gate has high entropy (all experts used) and each sample's gate has low
    entropy (each sample commits to an expert); 1 when all samples share the same gate.
    """
    num_experts = logits.shape[-1]
    log_probs = F.log_softmax(logits, dim=-1)
    probs = log_probs.exp()
    per_sample = -(probs * log_probs).sum(dim=-1).mean()
    mean_gate = probs.mean(dim=0)
    marginal = -(mean_gate * mean_gate.clamp_min(torch.finfo(mean_gate.dtype).tiny).log()).sum()
    log_e = math.log(num_experts)
    return (log_e - marginal + per_sample) / log_e


class MoEGatingLoss(nn.Module):
    """Router regularizers, each with its own weight; returns ``{name: weighted scalar}``.

    Terms: ``load_balance`` (``balance_weight``), ``z_loss`` (``z_loss_weight``), ``entropy``
    (``entropy_weight``); each is also multiplied by ``weight``. Terms whose weight is 0 are left out.
    """

    def __init__(self, config: MoEGatingLossConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, gate_logits: torch.Tensor, top_k_indices: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``gate_logits`` (..., E) router logits; ``top_k_indices`` (..., k) experts each sample was sent to.

        Without ``top_k_indices`` the ``top_k`` most probable experts of each sample are used.
        """
        if gate_logits.ndim < 1 or gate_logits.shape[-1] < 2:
            raise ValueError(
                f"moe_gating loss: gate_logits must be (..., E) with E >= 2 experts, got {tuple(gate_logits.shape)}"
            )
        num_experts = gate_logits.shape[-1]
        logits = gate_logits.float().reshape(-1, num_experts)
        terms: dict[str, torch.Tensor] = {}
        config = self.config
        if config.balance_weight > 0:
            probs = logits.softmax(dim=-1)
            assignments = self._assignments(probs, gate_logits.shape, top_k_indices)
            terms["load_balance"] = config.balance_weight * load_balance_term(probs, assignments)
        if config.z_loss_weight > 0:
            terms["z_loss"] = config.z_loss_weight * z_loss_term(logits)
        if config.entropy_weight > 0:
            terms["entropy"] = config.entropy_weight * entropy_term(logits)
        return {name: value * config.weight for name, value in terms.items()}

    def _assignments(
        self, probs: torch.Tensor, logits_shape: torch.Size, top_k_indices: torch.Tensor | None
    ) -> torch.Tensor:
        num_experts = probs.shape[-1]
        if top_k_indices is None:
            return probs.topk(min(self.config.top_k, num_experts), dim=-1).indices
        leading = tuple(logits_shape[:-1])
        if tuple(top_k_indices.shape[:-1]) != leading:
            raise ValueError(
                f"moe_gating loss: top_k_indices has shape {tuple(top_k_indices.shape)}, expected {(*leading, 'k')} "
                f"to match gate_logits {tuple(logits_shape)}"
            )
        indices = top_k_indices.long().reshape(probs.shape[0], -1)
        if indices.numel() and (indices.min() < 0 or indices.max() >= num_experts):
            raise ValueError(f"moe_gating loss: top_k_indices must lie in [0, {num_experts - 1}]")
        return indices
