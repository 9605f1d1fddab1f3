"""The ``mlp`` block: MLP / residual MLP with FiLM or concat conditioning on a vector and a flow time."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from vfp_il_components.models.layers import TimeEmbedding, activation, as_time, check_last_dim
from vfp_il_components.models.specs import MlpConfig, MlpSettings

__all__ = ["MLP", "ChunkMLP", "build_mlp"]


class _Film(nn.Module):
    """Scale and shift features from a conditioning embedding: ``h * (1 + gamma) + beta``."""

    def __init__(self, embed_dim: int, width: int) -> None:
        super().__init__()
        self.proj = nn.Linear(embed_dim, 2 * width)

    def forward(self, h: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(embedding).chunk(2, dim=-1)
        return h * (1 + gamma) + beta


class _Layer(nn.Module):
    """``Linear -> [LayerNorm] -> [FiLM] -> act -> dropout``."""

    def __init__(self, settings: MlpSettings, in_dim: int, width: int, film_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, width)
        self.norm = nn.LayerNorm(width) if settings.layer_norm else nn.Identity()
        self.film = _Film(film_dim, width) if film_dim else None
        self.act = activation(settings.activation)
        self.dropout = nn.Dropout(settings.dropout)

    def forward(self, h: torch.Tensor, embedding: torch.Tensor | None) -> torch.Tensor:
        h = self.norm(self.linear(h))
        if self.film is not None:
            assert embedding is not None
            h = self.film(h, embedding)
        out: torch.Tensor = self.dropout(self.act(h))
        return out


class _ResidualBlock(nn.Module):
    """``h + Linear(dropout(act(FiLM(Linear(act(LayerNorm(h)))))))`` (pre-norm)."""

    def __init__(self, settings: MlpSettings, width: int, film_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width) if settings.layer_norm else nn.Identity()
        self.act_in = activation(settings.activation)
        self.linear_in = nn.Linear(width, width)
        self.film = _Film(film_dim, width) if film_dim else None
        self.act_out = activation(settings.activation)
        self.dropout = nn.Dropout(settings.dropout)
        self.linear_out = nn.Linear(width, width)

    def forward(self, h: torch.Tensor, embedding: torch.Tensor | None) -> torch.Tensor:
        y = self.linear_in(self.act_in(self.norm(h)))
        if self.film is not None:
            assert embedding is not None
            y = self.film(y, embedding)
        y = self.linear_out(self.dropout(self.act_out(y)))
        return h + y


class MLP(nn.Module):
    """Multi-layer perceptron ``(N, in_dim) -> (N, out_dim)`` with optional condition and flow time.

    ``config`` is an ``MlpConfig`` (conditioning and time-embedding settings apply) or plain
    ``MlpSettings`` (then no condition nor time input). The condition vector and the time
    embedding (sinusoidal features then an MLP) form one embedding; with ``film`` conditioning it
    scales and shifts every hidden layer, with ``concat`` it is concatenated to the input.
    ``forward(x (..., in_dim), cond=None (..., cond_dim), t=None)``: ``t`` is a number or has one value
    per row of ``x`` (``(N,)`` or ``(N, 1)`` for ``x`` of shape ``(N, in_dim)``).
    """

    def __init__(
        self, config: MlpSettings, *, in_dim: int, out_dim: int, cond_dim: int = 0, time_input: bool = False
    ) -> None:
        super().__init__()
        if in_dim < 1 or out_dim < 1 or cond_dim < 0:
            raise ValueError(f"mlp: need in_dim >= 1, out_dim >= 1, cond_dim >= 0; got {in_dim}, {out_dim}, {cond_dim}")
        if (cond_dim or time_input) and not isinstance(config, MlpConfig):
            raise ValueError("mlp: a condition or time input needs an MlpConfig (conditioning and time settings)")
        self.in_dim, self.out_dim, self.cond_dim, self.time_input = in_dim, out_dim, cond_dim, time_input
        self.time_embedding: TimeEmbedding | None = None
        embed_dim = cond_dim
        conditioning = "concat"
        if isinstance(config, MlpConfig):
            conditioning = config.conditioning
            if time_input:
                self.time_embedding = TimeEmbedding(config.time_embed_dim, config.time_scale, config.activation)
                embed_dim += config.time_embed_dim
        hidden = list(config.hidden_dims)
        if conditioning == "film" and embed_dim and not hidden:
            raise ValueError("mlp: film conditioning needs at least one hidden layer (hidden_dims is empty)")
        self.film = conditioning == "film" and embed_dim > 0
        film_dim = embed_dim if self.film else 0
        self.embed_act = activation(config.activation) if self.film else nn.Identity()
        first_in = in_dim + (0 if self.film else embed_dim)
        self.layers = nn.ModuleList()
        if config.residual and hidden:
            width = hidden[0]
            self.input_proj: nn.Module = nn.Linear(first_in, width)
            self.layers.extend(_ResidualBlock(config, width, film_dim) for _ in hidden)
            tail: list[nn.Module] = [nn.LayerNorm(width)] if config.layer_norm else []
            self.output_head: nn.Module = nn.Sequential(*tail, activation(config.activation), nn.Linear(width, out_dim))
        else:
            self.input_proj = nn.Identity()
            widths = [first_in, *hidden]
            self.layers.extend(_Layer(config, a, b, film_dim) for a, b in itertools.pairwise(widths))
            self.output_head = nn.Linear(widths[-1], out_dim)

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None = None, t: torch.Tensor | float | None = None
    ) -> torch.Tensor:
        check_last_dim(x, self.in_dim, "mlp", "x")
        leading = x.shape[:-1]
        h = x.reshape(-1, self.in_dim)
        embedding = self._embedding(h.shape[0], leading, cond, t, h.device)
        if embedding is not None and not self.film:
            h = torch.cat([h, embedding.to(h.dtype)], dim=-1)
        if self.film and embedding is not None:
            embedding = self.embed_act(embedding)
        h = self.input_proj(h)
        for layer in self.layers:
            h = layer(h, embedding)
        out: torch.Tensor = self.output_head(h)
        return out.reshape(*leading, self.out_dim)

    def _embedding(
        self,
        rows: int,
        leading: torch.Size,
        cond: torch.Tensor | None,
        t: torch.Tensor | float | None,
        device: torch.device,
    ) -> torch.Tensor | None:
        parts: list[torch.Tensor] = []
        if self.time_embedding is not None:
            if t is None:
                raise ValueError("mlp: this network was built with time_input=True; pass t")
            parts.append(self.time_embedding(as_time(t, rows, device, "mlp")))
        elif t is not None:
            raise ValueError("mlp: got t, but this network was built without a time input (time_input=False)")
        if self.cond_dim:
            if cond is None:
                raise ValueError(f"mlp: this network was built with cond_dim={self.cond_dim}; pass cond")
            check_last_dim(cond, self.cond_dim, "mlp", "cond")
            if cond.shape[:-1] != leading:
                raise ValueError(
                    f"mlp: cond has leading shape {tuple(cond.shape[:-1])}, expected {tuple(leading)} like x"
                )
            parts.append(cond.reshape(rows, self.cond_dim))
        elif cond is not None:
            raise ValueError("mlp: got cond, but this network was built with cond_dim=0")
        if not parts:
            return None
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]


class ChunkMLP(nn.Module):
    """An :class:`MLP` over flattened action chunks: ``forward(x (B, H, A), cond=None, t=None) -> (B, H, A)``."""

    def __init__(
        self, config: MlpConfig, *, action_dim: int, horizon: int, cond_dim: int = 0, time_input: bool = False
    ) -> None:
        super().__init__()
        if action_dim < 1 or horizon < 1:
            raise ValueError(f"mlp: need action_dim >= 1 and horizon >= 1, got {action_dim} and {horizon}")
        self.action_dim, self.horizon, self.cond_dim, self.time_input = action_dim, horizon, cond_dim, time_input
        flat = action_dim * horizon
        self.net = MLP(config, in_dim=flat, out_dim=flat, cond_dim=cond_dim, time_input=time_input)

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None = None, t: torch.Tensor | float | None = None
    ) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1:] != (self.horizon, self.action_dim):
            raise ValueError(
                f"mlp: x must be (B, {self.horizon}, {self.action_dim}) action chunks, got {tuple(x.shape)}"
            )
        out: torch.Tensor = self.net(x.flatten(1), cond, t)
        return out.reshape(x.shape)


def build_mlp(
    config: MlpConfig,
    *,
    in_dim: int | None = None,
    out_dim: int | None = None,
    action_dim: int | None = None,
    horizon: int | None = None,
    cond_dim: int = 0,
    time_input: bool = False,
) -> MLP | ChunkMLP:
    """Build the ``mlp`` component: a vector MLP (``in_dim``, ``out_dim``) or a chunk MLP (``action_dim``, ``horizon``).

    ``cond_dim`` is the size of the condition vector (0: none); ``time_input`` adds a flow-time input.
    """
    vector = in_dim is not None or out_dim is not None
    chunk = action_dim is not None or horizon is not None
    if vector == chunk:
        raise ValueError(
            "mlp: pass either in_dim and out_dim (vectors) or action_dim and horizon (action chunks), "
            "not both or neither"
        )
    if vector:
        if in_dim is None or out_dim is None:
            raise ValueError(f"mlp: pass both in_dim and out_dim, got in_dim={in_dim}, out_dim={out_dim}")
        return MLP(config, in_dim=in_dim, out_dim=out_dim, cond_dim=cond_dim, time_input=time_input)
    if action_dim is None or horizon is None:
        raise ValueError(f"mlp: pass both action_dim and horizon, got action_dim={action_dim}, horizon={horizon}")
    return ChunkMLP(config, action_dim=action_dim, horizon=horizon, cond_dim=cond_dim, time_input=time_input)
