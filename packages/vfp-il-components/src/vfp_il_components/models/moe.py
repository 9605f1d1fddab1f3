"""Mixture of experts: the ``gate`` router and the ``moe_decoder`` flow decoder whose experts see the latent."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vfp_il_components.models.layers import as_time
from vfp_il_components.models.mlp import MLP, ChunkMLP
from vfp_il_components.models.specs import GateConfig, MlpExpertConfig, MoEDecoderConfig
from vfp_il_components.models.transformer import ChunkTransformer

__all__ = ["Gate", "GateOutput", "MoEDecoder", "top_k_weights"]


@dataclass(frozen=True)
class GateOutput:
    """What the gate returns for a batch of conditions."""

    weights: torch.Tensor
    """(B, E) expert weights, 0 outside each row's top k (see ``top_k_weights``)."""
    logits: torch.Tensor
    """(B, E) tempered logits the weights come from (feed them to the ``moe_gating`` loss)."""
    top_k_indices: torch.Tensor
    """(B, k) the selected experts, most probable first."""


def top_k_weights(logits: torch.Tensor, k: int, renormalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Expert weights that are zero outside the ``k`` largest logits of each row: ``(weights (B, E), indices (B, k))``.

    ``renormalize``: softmax over the kept logits (rows sum to 1); otherwise the softmax over all
    logits, zeroed outside the top k (rows sum to at most 1).
    """
    values, indices = logits.topk(k, dim=-1)
    kept = values.softmax(dim=-1) if renormalize else logits.softmax(dim=-1).gather(-1, indices)
    return torch.zeros_like(logits).scatter(-1, indices, kept), indices


class Gate(nn.Module):
    """Router: an MLP from the condition to E logits, divided by a temperature, then top-k softmax.

    In training mode ``noise_std`` adds Gaussian noise to the raw logits (noisy top-k routing). With
    ``renormalize`` (the default) the kept weights are a softmax over the top k logits; note that
    with ``top_k: 1`` this weight is constantly 1, so the router then learns only from auxiliary
    losses (``moe_gating``): set ``renormalize: false`` to keep the task-loss gradient.
    Dimensions: ``cond_dim``, ``num_experts``.
    ``forward(cond (B, cond_dim), temperature=None, top_k=None) -> GateOutput``; the arguments override
    the config's values for one call (e.g. a temperature schedule).
    """

    def __init__(self, config: GateConfig, *, cond_dim: int, num_experts: int) -> None:
        super().__init__()
        if num_experts < 1 or cond_dim < 1:
            raise ValueError(f"gate: need cond_dim >= 1 and num_experts >= 1, got {cond_dim} and {num_experts}")
        if config.top_k is not None and config.top_k > num_experts:
            raise ValueError(f"gate: top_k ({config.top_k}) must be <= num_experts ({num_experts})")
        self.cond_dim, self.num_experts = cond_dim, num_experts
        self.top_k = config.top_k or num_experts
        self.temperature = config.temperature
        self.noise_std = config.noise_std
        self.renormalize = config.renormalize
        self.net = MLP(config, in_dim=cond_dim, out_dim=num_experts)

    def forward(self, cond: torch.Tensor, temperature: float | None = None, top_k: int | None = None) -> GateOutput:
        temperature = self.temperature if temperature is None else temperature
        k = self.top_k if top_k is None else top_k
        if temperature <= 0:
            raise ValueError(f"gate: temperature must be > 0, got {temperature}")
        if not 1 <= k <= self.num_experts:
            raise ValueError(f"gate: top_k must lie in [1, {self.num_experts}], got {k}")
        raw = self.net(cond)
        if self.training and self.noise_std > 0:
            raw = raw + self.noise_std * torch.randn_like(raw)
        logits = raw / temperature
        weights, indices = top_k_weights(logits, k, self.renormalize)
        return GateOutput(weights, logits, indices)


def _build_expert(config: MoEDecoderConfig, action_dim: int, horizon: int, cond_dim: int) -> nn.Module:
    if isinstance(config.expert, MlpExpertConfig):
        return ChunkMLP(config.expert, action_dim=action_dim, horizon=horizon, cond_dim=cond_dim, time_input=True)
    return ChunkTransformer(config.expert, action_dim=action_dim, horizon=horizon, cond_dim=cond_dim, time_input=True)


class MoEDecoder(nn.Module):
    """Mixture-of-experts velocity network: ``v(x_t, t, o, z) = sum_e w_e * v_e(x_t, t, [o, z])``.

    Every expert (a chunk MLP or chunk transformer) is conditioned on the observation feature
    ``cond`` **and** the latent ``z`` (concatenated), and on the flow time ``t``. The weights ``w``
    come from a separate ``gate`` component (so the trainer chooses what the gate sees).

    ``dispatch: sparse`` runs each expert only on the rows where its weight is non-zero (B*k expert
    rows with top-k routing); every expert still runs (on zero rows if none are routed to it) so all
    parameters take part in the graph, as DDP requires. ``dense`` runs every expert on every row.

    Dimensions: ``action_dim``, ``horizon``, ``cond_dim``, ``latent_dim`` (0: no latent), ``num_experts``.
    ``forward(x (B, H, A), cond=None (B, cond_dim), t=None (B,), *, z=None (B, latent_dim),
    weights=None (B, E)) -> (B, H, A)``; ``weights`` may be omitted only with a single expert.
    """

    def __init__(
        self,
        config: MoEDecoderConfig,
        *,
        action_dim: int,
        horizon: int,
        cond_dim: int = 0,
        latent_dim: int = 0,
        num_experts: int = 1,
    ) -> None:
        super().__init__()
        if num_experts < 1 or cond_dim < 0 or latent_dim < 0:
            raise ValueError(
                f"moe_decoder: need num_experts >= 1, cond_dim >= 0, latent_dim >= 0; "
                f"got {num_experts}, {cond_dim}, {latent_dim}"
            )
        self.action_dim, self.horizon = action_dim, horizon
        self.cond_dim, self.latent_dim, self.num_experts = cond_dim, latent_dim, num_experts
        self.dispatch = config.dispatch
        self.experts = nn.ModuleList(
            _build_expert(config, action_dim, horizon, cond_dim + latent_dim) for _ in range(num_experts)
        )

    def _expert_condition(self, batch: int, cond: torch.Tensor | None, z: torch.Tensor | None) -> torch.Tensor | None:
        parts: list[torch.Tensor] = []
        for name, value, dim, dim_name in (
            ("cond", cond, self.cond_dim, "cond_dim"),
            ("z", z, self.latent_dim, "latent_dim"),
        ):
            if dim:
                if value is None or value.shape != (batch, dim):
                    got = None if value is None else tuple(value.shape)
                    raise ValueError(f"moe_decoder: {name} must be ({batch}, {dim}), got {got}")
                parts.append(value)
            elif value is not None:
                raise ValueError(f"moe_decoder: got {name}, but it was built with {dim_name}=0")
        if not parts:
            return None
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]

    def _check_x(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[1:] != (self.horizon, self.action_dim):
            raise ValueError(
                f"moe_decoder: x must be (B, {self.horizon}, {self.action_dim}) action chunks, got {tuple(x.shape)}"
            )

    def expert_outputs(
        self,
        x: torch.Tensor,
        cond: torch.Tensor | None = None,
        t: torch.Tensor | float | None = None,
        *,
        z: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Every expert's velocity on every row: ``(B, E, H, A)``."""
        self._check_x(x)
        condition = self._expert_condition(x.shape[0], cond, z)
        time = as_time(self._require_t(t), x.shape[0], x.device, "moe_decoder")
        return torch.stack([expert(x, condition, time) for expert in self.experts], dim=1)

    @staticmethod
    def _require_t(t: torch.Tensor | float | None) -> torch.Tensor | float:
        if t is None:
            raise ValueError("moe_decoder: pass the flow time t")
        return t

    def forward(
        self,
        x: torch.Tensor,
        cond: torch.Tensor | None = None,
        t: torch.Tensor | float | None = None,
        *,
        z: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        self._check_x(x)
        batch = x.shape[0]
        condition = self._expert_condition(batch, cond, z)
        time = as_time(self._require_t(t), batch, x.device, "moe_decoder")
        if weights is None:
            if self.num_experts != 1:
                raise ValueError(
                    f"moe_decoder: pass the gate weights (B, {self.num_experts}) for {self.num_experts} experts"
                )
            out: torch.Tensor = self.experts[0](x, condition, time)
            return out
        if weights.shape != (batch, self.num_experts):
            raise ValueError(f"moe_decoder: weights must be ({batch}, {self.num_experts}), got {tuple(weights.shape)}")
        if self.dispatch == "dense":
            return self._dense(x, condition, time, weights)
        return self._sparse(x, condition, time, weights)

    def _dense(
        self, x: torch.Tensor, condition: torch.Tensor | None, time: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        out = torch.zeros_like(x)
        for index, expert in enumerate(self.experts):
            out = out + weights[:, index, None, None].to(x.dtype) * expert(x, condition, time)
        return out

    def _sparse(
        self, x: torch.Tensor, condition: torch.Tensor | None, time: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        routed = (weights != 0).T.nonzero()  # (N, 2): (expert, row), grouped by expert
        counts = torch.bincount(routed[:, 0], minlength=self.num_experts).tolist()  # the one host sync
        out = torch.zeros_like(x)
        batch = x.shape[0]
        for index, (expert, rows, count) in enumerate(
            zip(self.experts, routed[:, 1].split(counts), counts, strict=True)
        ):
            if count == batch:  # every row routed here: no gather/scatter needed
                out = out + weights[:, index, None, None] * expert(x, condition, time)
                continue
            sub_condition = None if condition is None else condition[rows]
            velocity = expert(x[rows], sub_condition, time[rows])
            out = out.index_add(0, rows, (weights[rows, index, None, None] * velocity).to(out.dtype))
        return out
