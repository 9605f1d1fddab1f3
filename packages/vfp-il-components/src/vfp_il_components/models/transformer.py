"""The ``chunk_transformer`` block: a small transformer over the steps of an action chunk."""

from __future__ import annotations

import torch
from torch import nn

from vfp_il_components.models.layers import TimeEmbedding, activation, as_time, check_last_dim
from vfp_il_components.models.specs import ChunkTransformerConfig

__all__ = ["ChunkTransformer"]


class _Block(nn.Module):
    """Pre-norm transformer block; with ``adaptive`` its LayerNorms are scaled and shifted by a condition."""

    def __init__(self, config: ChunkTransformerConfig, adaptive: bool) -> None:
        super().__init__()
        d = config.d_model
        self.norm_attn = nn.LayerNorm(d, elementwise_affine=not adaptive)
        self.attn = nn.MultiheadAttention(d, config.num_heads, dropout=config.dropout, batch_first=True)
        self.norm_mlp = nn.LayerNorm(d, elementwise_affine=not adaptive)
        hidden = max(1, round(config.mlp_ratio * d))
        self.mlp = nn.Sequential(
            nn.Linear(d, hidden), activation(config.activation), nn.Dropout(config.dropout), nn.Linear(hidden, d)
        )
        self.modulation = nn.Linear(d, 4 * d) if adaptive else None

    def forward(self, h: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        a, m = self.norm_attn(h), None
        if self.modulation is not None and condition is not None:
            scale_a, shift_a, scale_m, shift_m = self.modulation(condition).unsqueeze(1).chunk(4, dim=-1)
            a = a * (1 + scale_a) + shift_a
            m = (scale_m, shift_m)
        h = h + self.attn(a, a, a, need_weights=False)[0]
        b = self.norm_mlp(h)
        if m is not None:
            b = b * (1 + m[0]) + m[1]
        out: torch.Tensor = h + self.mlp(b)
        return out


class ChunkTransformer(nn.Module):
    """Transformer velocity network over action chunks: ``(B, H, A) -> (B, H, A)``.

    Each chunk step is a token (linear embedding plus a learned position). The condition vector
    (projected to ``d_model``) and the flow-time embedding either modulate every block's LayerNorms
    (``adaln``, summed into one conditioning vector, FiLM on the tokens) or enter as two extra tokens
    (``tokens``). Attention is bidirectional over the chunk.

    Dimensions: ``action_dim``, ``horizon``, ``cond_dim`` (0: none), ``time_input``.
    ``forward(x (B, H, A), cond=None (B, cond_dim), t=None (B,) or number)``.
    """

    def __init__(
        self,
        config: ChunkTransformerConfig,
        *,
        action_dim: int,
        horizon: int,
        cond_dim: int = 0,
        time_input: bool = False,
    ) -> None:
        super().__init__()
        if action_dim < 1 or horizon < 1 or cond_dim < 0:
            raise ValueError(
                f"chunk_transformer: need action_dim >= 1, horizon >= 1, cond_dim >= 0; "
                f"got {action_dim}, {horizon}, {cond_dim}"
            )
        d = config.d_model
        self.action_dim, self.horizon, self.cond_dim, self.time_input = action_dim, horizon, cond_dim, time_input
        self.adaptive = config.conditioning == "adaln"
        self.input_proj = nn.Linear(action_dim, d)
        extra_tokens = 0 if self.adaptive else int(cond_dim > 0) + int(time_input)
        self.positions = nn.Parameter(torch.randn(1, horizon + extra_tokens, d) * 0.02)
        self.cond_proj = nn.Linear(cond_dim, d) if cond_dim else None
        self.time_embedding = TimeEmbedding(d, config.time_scale, "silu") if time_input else None
        has_condition = self.adaptive and (cond_dim > 0 or time_input)
        self.condition_act = nn.SiLU()
        self.blocks = nn.ModuleList(_Block(config, has_condition) for _ in range(config.num_layers))
        self.final_norm = nn.LayerNorm(d, elementwise_affine=not has_condition)
        self.final_modulation = nn.Linear(d, 2 * d) if has_condition else None
        self.output_proj = nn.Linear(d, action_dim)

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None = None, t: torch.Tensor | float | None = None
    ) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1:] != (self.horizon, self.action_dim):
            raise ValueError(
                f"chunk_transformer: x must be (B, {self.horizon}, {self.action_dim}) action chunks, "
                f"got {tuple(x.shape)}"
            )
        batch = x.shape[0]
        tokens = self._condition_tokens(batch, cond, t, x.device)
        h = self.input_proj(x)
        condition: torch.Tensor | None = None
        if self.adaptive:
            if tokens:
                condition = self.condition_act(torch.stack(tokens, dim=0).sum(dim=0))
        elif tokens:
            h = torch.cat([torch.stack(tokens, dim=1).to(h.dtype), h], dim=1)
        h = h + self.positions
        for block in self.blocks:
            h = block(h, condition)
        h = self.final_norm(h[:, -self.horizon :])
        if self.final_modulation is not None and condition is not None:
            scale, shift = self.final_modulation(condition).unsqueeze(1).chunk(2, dim=-1)
            h = h * (1 + scale) + shift
        out: torch.Tensor = self.output_proj(h)
        return out

    def _condition_tokens(
        self, batch: int, cond: torch.Tensor | None, t: torch.Tensor | float | None, device: torch.device
    ) -> list[torch.Tensor]:
        tokens: list[torch.Tensor] = []
        if self.cond_proj is not None:
            if cond is None:
                raise ValueError(f"chunk_transformer: built with cond_dim={self.cond_dim}; pass cond")
            check_last_dim(cond, self.cond_dim, "chunk_transformer", "cond")
            if cond.shape != (batch, self.cond_dim):
                raise ValueError(f"chunk_transformer: cond must be ({batch}, {self.cond_dim}), got {tuple(cond.shape)}")
            tokens.append(self.cond_proj(cond))
        elif cond is not None:
            raise ValueError("chunk_transformer: got cond, but this network was built with cond_dim=0")
        if self.time_embedding is not None:
            if t is None:
                raise ValueError("chunk_transformer: built with time_input=True; pass t")
            tokens.append(self.time_embedding(as_time(t, batch, device, "chunk_transformer")))
        elif t is not None:
            raise ValueError("chunk_transformer: got t, but this network was built without a time input")
        return tokens
