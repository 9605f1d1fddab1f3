"""The ``vq_codebook`` block: vector quantization with straight-through or noise-substitution gradients."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from vfp_il_components.models.layers import check_last_dim
from vfp_il_components.models.specs import VQCodebookConfig

__all__ = ["VQCodebook", "VQOutput", "perplexity"]

EMA_EPSILON = 1e-5


@dataclass(frozen=True)
class VQOutput:
    """What the codebook returns for a batch of encoder outputs ``z_e`` of shape ``(..., D)``."""

    quantized: torch.Tensor
    """(..., D) the nearest codes, carrying gradients to ``z_e`` (straight-through or NSVQ)."""
    indices: torch.Tensor
    """(...) index of the nearest code of each vector."""
    losses: dict[str, torch.Tensor]
    """``commitment`` (already multiplied by beta) and, with ``codebook_update: loss``, ``codebook``."""
    metrics: dict[str, torch.Tensor]
    """``perplexity`` (exp of the entropy of this batch's code usage), ``usage`` (fraction of codes used)
    and, in training, ``restarted`` (codes re-initialized by this call)."""


def perplexity(counts: torch.Tensor) -> torch.Tensor:
    """``exp(H(p))`` of the code usage ``p = counts / sum(counts)``: K for uniform usage, 1 for a single code."""
    probs = counts.float() / counts.sum().clamp_min(1)
    return torch.exp(-(probs * probs.clamp_min(1e-12).log()).sum())


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class VQCodebook(nn.Module):
    """A codebook of ``num_codes`` vectors of size ``latent_dim``; each input vector maps to its nearest code.

    Gradients: ``straight_through`` copies the decoder's gradient to the encoder (``z + sg(q - z)``);
    ``nsvq`` (Vali and Bäckström, 2022) replaces the quantization error by noise of the same norm in
    training, ``z + |z - q| * v / |v|``, which also passes gradients to the codes in ``loss`` mode.
    Codes learn from a codebook loss ``|sg(z) - q|^2`` (``codebook_update: loss``; the codebook is a
    parameter) or from exponential moving averages of the vectors assigned to them (``ema``; the
    codebook is a buffer). The commitment loss ``beta * |z - sg(q)|^2`` keeps the encoder close to its codes.

    In training mode, the codebook is first set from the batch's vectors (``data_init``), and codes
    unused for ``restart_after`` calls are re-initialized from the current batch's vectors. Under
    ``torch.distributed`` the usage counts and EMA statistics are summed over processes and the new
    codes are broadcast from rank 0, so every process keeps the same codebook.

    Dimensions: ``latent_dim``. ``forward(z_e (..., D)) -> VQOutput``; ``lookup(indices) -> (..., D)``.
    """

    codebook: torch.Tensor
    ema_count: torch.Tensor
    ema_sum: torch.Tensor
    unused_calls: torch.Tensor
    initialized: torch.Tensor

    def __init__(self, config: VQCodebookConfig, *, latent_dim: int) -> None:
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"vq_codebook: latent_dim must be >= 1, got {latent_dim}")
        self.num_codes, self.latent_dim = config.num_codes, latent_dim
        self.quantizer, self.update, self.beta = config.quantizer, config.codebook_update, config.beta
        self.ema_decay, self.restart_after = config.ema_decay, config.restart_after
        initial = torch.empty(self.num_codes, latent_dim).uniform_(-1.0 / self.num_codes, 1.0 / self.num_codes)
        if self.update == "loss":
            self.codebook = nn.Parameter(initial)
        else:
            self.register_buffer("codebook", initial)
            self.register_buffer("ema_count", torch.ones(self.num_codes))
            self.register_buffer("ema_sum", initial.clone())
        self.register_buffer("unused_calls", torch.zeros(self.num_codes, dtype=torch.long))
        self.register_buffer("initialized", torch.tensor(not config.data_init))

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """The codes of ``indices`` ``(...)``: ``(..., D)``."""
        return F.embedding(indices, self.codebook)

    def forward(self, z_e: torch.Tensor) -> VQOutput:
        check_last_dim(z_e, self.latent_dim, "vq_codebook", "z_e")
        flat = z_e.reshape(-1, self.latent_dim)
        if self.training and not bool(self.initialized):
            self._set_codes(torch.ones(self.num_codes, dtype=torch.bool, device=flat.device), flat)
            self.initialized.fill_(True)
        codebook = self.codebook
        distances = (
            flat.float().square().sum(-1, keepdim=True)
            - 2 * flat.float() @ codebook.float().T
            + codebook.float().square().sum(-1)[None, :]
        )
        indices = distances.argmin(dim=-1)
        codes = F.embedding(indices, codebook).to(flat.dtype)
        losses = {"commitment": self.beta * F.mse_loss(flat, codes.detach())}
        if self.update == "loss":
            losses["codebook"] = F.mse_loss(flat.detach(), codes)
        counts = torch.bincount(indices, minlength=self.num_codes).to(flat.dtype)
        metrics = {"perplexity": perplexity(counts.detach()), "usage": (counts > 0).float().mean()}
        if self.training and self.quantizer == "nsvq":
            noise = torch.randn_like(flat)
            error_norm = (flat - codes).norm(dim=-1, keepdim=True)
            quantized = flat + error_norm * noise / noise.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        else:
            quantized = flat + (codes - flat).detach()
        if self.training:
            metrics["restarted"] = self._update_codes(flat.detach(), indices, counts.detach())
        return VQOutput(quantized.reshape(z_e.shape), indices.reshape(z_e.shape[:-1]), losses, metrics)

    @torch.no_grad()
    def _update_codes(self, flat: torch.Tensor, indices: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """EMA update and dead-code restarts after a training call; returns the number of restarted codes."""
        counts = counts.float()
        synced = _world_size() > 1
        if self.update == "ema":
            sums = torch.zeros_like(self.ema_sum).index_add_(0, indices, flat.to(self.ema_sum.dtype))
            if synced:
                dist.all_reduce(counts)
                dist.all_reduce(sums)
            decay = self.ema_decay
            self.ema_count.mul_(decay).add_(counts, alpha=1 - decay)
            self.ema_sum.mul_(decay).add_(sums, alpha=1 - decay)
            total = self.ema_count.sum()
            smoothed = (self.ema_count + EMA_EPSILON) / (total + self.num_codes * EMA_EPSILON) * total
            self.codebook.copy_(self.ema_sum / smoothed[:, None])
        elif synced:
            dist.all_reduce(counts)
        if self.restart_after is None:
            return torch.zeros((), device=flat.device)
        self.unused_calls.add_(1).masked_fill_(counts > 0, 0)
        dead = self.unused_calls >= self.restart_after
        restarted = dead.sum()
        if bool(restarted):
            self._set_codes(dead, flat)
        return restarted.float()

    @torch.no_grad()
    def _set_codes(self, which: torch.Tensor, flat: torch.Tensor) -> None:
        """Set the codes where ``which`` is True to random vectors of ``flat`` (broadcast from rank 0)."""
        wanted = int(which.sum())
        rows = flat.shape[0]
        if rows >= wanted:
            picks = flat[torch.randperm(rows, device=flat.device)[:wanted]].clone()
        else:  # fewer vectors than codes: reuse some, jittered so the codes differ
            picks = flat[torch.randint(rows, (wanted,), device=flat.device)]
            picks = picks + 0.01 * flat.float().std(correction=0).clamp_min(1e-6) * torch.randn_like(picks)
        picks = picks.to(self.codebook.dtype)
        if _world_size() > 1:
            dist.broadcast(picks, src=0)
        self.codebook.data[which] = picks
        if self.update == "ema":
            self.ema_sum[which] = picks
            self.ema_count[which] = 1.0
        self.unused_calls[which] = 0
