"""Light registration module of the flow-matching trainers (config models only, no torch import).

Trainers find their parts by name in the experiment (``cross_check`` reports a missing or mistyped
one with the key to fix):

- ``naive_flow_matching_policy``: model components ``obs_encoder`` and ``velocity``; loss ``flow``.
- ``variational_flow_matching_policy``: model components ``obs_encoder``, ``posterior``, ``prior``,
  ``gate`` and ``action_decoder``; losses ``flow``, optionally ``alignment`` (``sinkhorn``) and
  ``gating`` (``moe_gating``).
- ``vfp_single_expert``: as VFP, without ``gate`` and ``gating``.

Implementations: ``flow_matching.py`` and ``vfp.py`` (shared machinery in ``common.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vfp import ComponentConfig, ComponentKind, ComponentSpec

__all__ = [
    "SPECS",
    "ClosedLoopSettings",
    "FlowSettings",
    "LatentSettings",
    "NaiveFlowMatchingConfig",
    "VFPConfig",
    "VFPSingleExpertConfig",
]

TimeDistribution = Literal["uniform", "beta", "logit_normal"]
Integrator = Literal["euler", "heun"]

VELOCITY_TYPES = ("mlp", "chunk_transformer")
LATENT_TYPES = ("gaussian_encoder", "categorical_head")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, defer_build=True)


class FlowSettings(_Strict):
    """Conditional flow matching on action chunks: x_t = (1 - t) x0 + t A, target velocity A - x0."""

    time_distribution: TimeDistribution = Field(
        "uniform",
        description="How training times t in [0, 1] are drawn: uniform, beta (Beta(beta_a, beta_b)) or "
        "logit_normal (sigmoid of N(logit_normal_mean, logit_normal_std)). t=0 is noise, t=1 the action chunk.",
    )
    beta_a: float = Field(1.0, gt=0.0, description="First shape parameter of the Beta time distribution.")
    beta_b: float = Field(1.5, gt=0.0, description="Second shape parameter (> beta_a favours times near the noise).")
    logit_normal_mean: float = Field(0.0, description="Mean of the normal whose sigmoid is the time.")
    logit_normal_std: float = Field(1.0, gt=0.0, description="Std of the normal whose sigmoid is the time.")
    noise_std: float = Field(1.0, gt=0.0, description="Std of the Gaussian source x0 (in normalized action units).")
    num_steps: int = Field(10, ge=1, description="Integration steps at evaluation unless `vfp eval --steps` says.")
    integrator: Integrator = Field("euler", description="euler (1 evaluation per step) or heun (2 per step).")


class ClosedLoopSettings(_Strict):
    """Evaluation: closed-loop rollouts on the data's synthetic task, or offline metrics without one."""

    episodes: int = Field(100, ge=1, description="Closed-loop episodes (run in parallel) per evaluation.")
    seed: int = Field(1000, description="Seed of the evaluation episodes (initial states, expert modes).")
    action_steps: int | None = Field(
        8, ge=1, description="Actions executed from each sampled chunk before re-planning (null: the whole chunk)."
    )
    offline_samples: int = Field(
        4, ge=1, description="Without a task: samples per held-out observation for `action_mse_best_of_k`."
    )


class LatentSettings(_Strict):
    """The latent z of VFP: its size, the KL weight (beta) schedule and sampling temperatures.

    The kind follows the ``prior``/``posterior`` architectures: ``gaussian_encoder`` (a diagonal
    Gaussian prior p(z|o) and KL(q || p)) or ``categorical_head`` (``dim`` classes, one-hot z,
    Gumbel-softmax posterior samples and KL between the categoricals).
    """

    dim: int = Field(8, ge=1, description="Size of the Gaussian latent, or number of classes of a categorical one.")
    kl_weight: float = Field(0.01, ge=0.0, description="Final weight beta of KL(q(z|o,A) || p(z|o)).")
    kl_warmup_steps: int = Field(0, ge=0, description="Steps of linear increase of beta from 0 (0: constant).")
    kl_balance: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Share of the KL gradient that trains the prior (the rest trains the posterior); 0.5 is the "
        "plain KL. Higher values make the prior follow the posterior rather than squeeze it.",
    )
    free_nats: float = Field(0.0, ge=0.0, description="KL below this many nats per sample is not penalized.")
    gumbel_temperature: float = Field(1.0, gt=0.0, description="Temperature of Gumbel-softmax samples (categorical).")
    prior_temperature: float = Field(
        1.0,
        ge=0.0,
        description="Sampling temperature of the prior at inference (scales the Gaussian std or divides the logits; "
        "0 takes the mean / most probable class, which gives up multi-modality).",
    )


def _model_type(experiment: Any, name: str) -> str | None:
    model: Mapping[str, Any] = getattr(experiment, "model", {})
    part = model.get(name)
    return None if part is None else str(part.arch.type)


def _loss_type(experiment: Any, name: str) -> str | None:
    losses: Mapping[str, Any] = getattr(experiment, "losses", {})
    loss = losses.get(name)
    return None if loss is None else str(loss.type)


def _require_model(experiment: Any, name: str, allowed: tuple[str, ...], purpose: str) -> Iterable[tuple[str, str]]:
    found = _model_type(experiment, name)
    if found is None:
        yield "type", f"this trainer needs model component {name!r} ({purpose}) of type {' or '.join(allowed)}"
    elif found not in allowed:
        yield "type", f"model component {name!r} ({purpose}) must be of type {' or '.join(allowed)}, got {found!r}"


def _require_loss(
    experiment: Any, name: str, allowed: str, purpose: str, optional: bool = False
) -> Iterable[tuple[str, str]]:
    found = _loss_type(experiment, name)
    if found is None and not optional:
        yield "type", f"this trainer needs loss {name!r} ({purpose}) of type {allowed!r}"
    elif found is not None and found != allowed:
        yield "type", f"loss {name!r} ({purpose}) must be of type {allowed!r}, got {found!r}"


class _FlowTrainerConfig(ComponentConfig):
    flow: FlowSettings = Field(default_factory=FlowSettings, description="Flow-matching path, time and sampling.")
    evaluation: ClosedLoopSettings = Field(
        default_factory=ClosedLoopSettings, description="Closed-loop (or offline) evaluation of the policy."
    )


class NaiveFlowMatchingConfig(_FlowTrainerConfig):
    """Conditional flow matching on action chunks with a velocity net conditioned on the observation feature.

    Model components: ``obs_encoder`` (obs_encoder), ``velocity`` (mlp or chunk_transformer). Loss: ``flow`` (l2).
    """

    def cross_check(self, experiment: Any) -> Iterable[tuple[str, str]]:
        yield from _require_model(experiment, "obs_encoder", ("obs_encoder",), "observation features")
        yield from _require_model(experiment, "velocity", VELOCITY_TYPES, "velocity network")
        yield from _require_loss(experiment, "flow", "l2", "flow-matching regression")


class VFPSingleExpertConfig(_FlowTrainerConfig):
    """Variational flow-matching policy with one expert: a latent z from q(z|o,A) in training and from a
    stochastic prior p(z|o) at inference conditions a flow decoder.

    Model components: ``obs_encoder``, ``posterior`` and ``prior`` (both gaussian_encoder or both
    categorical_head), ``action_decoder`` (moe_decoder). Losses: ``flow`` (l2), optionally ``alignment``
    (sinkhorn between one-step chunks generated from the prior and the expert chunks).
    """

    latent: LatentSettings = Field(default_factory=LatentSettings, description="Latent size, KL schedule, sampling.")
    alignment_samples: int | None = Field(
        128,
        ge=2,
        description="Rows of each batch used by the Sinkhorn alignment term (its cost grows with the square; "
        "null: the whole batch).",
    )

    @property
    def num_experts(self) -> int:
        return 1

    def cross_check(self, experiment: Any) -> Iterable[tuple[str, str]]:
        yield from _require_model(experiment, "obs_encoder", ("obs_encoder",), "observation features")
        yield from _require_model(experiment, "posterior", LATENT_TYPES, "q(z | o, A)")
        yield from _require_model(experiment, "prior", LATENT_TYPES, "p(z | o)")
        yield from _require_model(experiment, "action_decoder", ("moe_decoder",), "flow decoder")
        posterior, prior = _model_type(experiment, "posterior"), _model_type(experiment, "prior")
        if posterior in LATENT_TYPES and prior in LATENT_TYPES and posterior != prior:
            yield "type", f"posterior ({posterior}) and prior ({prior}) must be of the same kind"
        yield from _require_loss(experiment, "flow", "l2", "flow-matching regression")
        yield from _require_loss(experiment, "alignment", "sinkhorn", "one-step OT alignment", optional=True)
        yield from self._check_experts(experiment)

    def _check_experts(self, experiment: Any) -> Iterable[tuple[str, str]]:
        if _model_type(experiment, "gate") is not None:
            yield "type", "the single-expert trainer has no gate: remove model component 'gate'"
        if _loss_type(experiment, "gating") is not None:
            yield "type", "the single-expert trainer has no gate: remove loss 'gating'"


class VFPConfig(VFPSingleExpertConfig):
    """Variational flow-matching policy (VFP): a stochastic latent prior picks the mode, a gate routes
    (o, z) to experts that all see z, and an optional Sinkhorn term aligns one-step generated chunks
    with the expert chunks.

    Model components: as ``vfp_single_expert`` plus ``gate`` (gate; top-k and temperature in its arch).
    Losses: ``flow`` (l2), optionally ``alignment`` (sinkhorn) and ``gating`` (moe_gating).
    """

    experts: int = Field(4, ge=2, description="Number of experts of the action decoder (the gate picks top-k).")

    @property
    def num_experts(self) -> int:
        return self.experts

    def _check_experts(self, experiment: Any) -> Iterable[tuple[str, str]]:
        yield from _require_model(experiment, "gate", ("gate",), "expert router")
        yield from _require_loss(experiment, "gating", "moe_gating", "router balance", optional=True)


_IMPL = "vfp_il_components.trainers"

SPECS: list[ComponentSpec] = [
    ComponentSpec(
        ComponentKind.TRAINER,
        "naive_flow_matching_policy",
        NaiveFlowMatchingConfig,
        f"{_IMPL}.flow_matching:NaiveFlowMatchingTrainer",
        "Conditional flow matching on action chunks; N-step Euler or Heun sampling.",
    ),
    ComponentSpec(
        ComponentKind.TRAINER,
        "variational_flow_matching_policy",
        VFPConfig,
        f"{_IMPL}.vfp:VariationalFlowMatchingTrainer",
        "VFP: stochastic latent prior, mixture-of-experts flow decoder seeing z, Sinkhorn alignment.",
    ),
    ComponentSpec(
        ComponentKind.TRAINER,
        "vfp_single_expert",
        VFPSingleExpertConfig,
        f"{_IMPL}.vfp:VariationalFlowMatchingTrainer",
        "VFP with a single expert and no gate.",
    ),
]
