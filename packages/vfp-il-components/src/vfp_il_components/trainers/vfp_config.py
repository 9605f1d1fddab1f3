"""Light config and registration of the ``variational_flow_matching_policy`` and ``vfp_single_expert`` trainers.

No torch import; the implementation of both is ``trainers/vfp.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import Field

from vfp import ComponentKind, ComponentSpec, ComponentUse, Settings
from vfp_il_components.trainers._config import (
    LATENT_TYPES,
    FlowTrainerConfig,
    model_type,
    require_loss,
    require_model,
)

__all__ = ["SPECS", "LatentSettings", "VFPConfig", "VFPSingleExpertConfig"]


class LatentSettings(Settings):
    """The latent z of VFP: its size, the KL weight (beta) schedule and sampling temperatures.

    The kind follows the ``prior``/``posterior`` architectures: ``gaussian_encoder`` (a diagonal
    Gaussian prior p(z|o) and KL(q || p)) or ``categorical_head`` (``dim`` classes, one-hot z,
    Gumbel-softmax posterior samples and KL between the categoricals).
    """

    dim: int = Field(
        8, ge=1, le=65536, description="Size of the Gaussian latent, or number of classes of a categorical one."
    )
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


class VFPSingleExpertConfig(FlowTrainerConfig):
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
        le=1 << 20,
        description="Rows of each batch used by the Sinkhorn alignment term (its cost grows with the square; "
        "null: the whole batch).",
    )
    alignment_steps: int | None = Field(
        1,
        ge=1,
        le=1000,
        description="Integration steps of the generated chunks the Sinkhorn term aligns (differentiated through "
        "every step): 1 is one Euler step (the VFP paper's); N > 1 the evaluation sampler with N steps (flow "
        "integrator and options); null: flow.num_steps, the steps the policy is evaluated and deployed with.",
    )
    alignment_start_step: int = Field(
        0, ge=0, description="Optimizer steps before the Sinkhorn term is used (it is not computed before)."
    )
    alignment_warmup_steps: int = Field(
        0,
        ge=0,
        description="Steps of linear increase of the Sinkhorn term's weight from 0 to the loss's weight after "
        "alignment_start_step (0: the full weight at once).",
    )

    @property
    def num_experts(self) -> int:
        return 1

    def component_use(self, experiment: Any) -> ComponentUse:
        """As the trainer builds: a gate (and its ``gating`` loss, when defined) only with several experts."""
        models = {"obs_encoder", "posterior", "prior", "action_decoder"}
        losses = {"flow"} | ({"alignment"} & set(experiment.losses))
        if self.num_experts > 1:
            models.add("gate")
            losses |= {"gating"} & set(experiment.losses)
        return ComponentUse(models=frozenset(models), losses=frozenset(losses))

    def cross_check(self, experiment: Any) -> Iterable[tuple[str, str]]:
        yield from require_model(experiment, "obs_encoder", ("obs_encoder",), "observation features")
        yield from require_model(experiment, "posterior", LATENT_TYPES, "q(z | o, A)")
        yield from require_model(experiment, "prior", LATENT_TYPES, "p(z | o)")
        yield from require_model(experiment, "action_decoder", ("moe_decoder",), "flow decoder")
        posterior, prior = model_type(experiment, "posterior"), model_type(experiment, "prior")
        if posterior in LATENT_TYPES and prior in LATENT_TYPES and posterior != prior:
            yield "type", f"posterior ({posterior}) and prior ({prior}) must be of the same kind"
        yield from require_loss(experiment, "flow", "l2", "flow-matching regression")
        yield from require_loss(experiment, "alignment", "sinkhorn", "one-step OT alignment", optional=True)
        if "alignment" not in experiment.losses:
            for key in ("alignment_steps", "alignment_start_step", "alignment_warmup_steps"):
                if key in self.model_fields_set:
                    yield key, "is set but the experiment has no `alignment` loss (losses.alignment: {type: sinkhorn})"
        yield from self._check_experts(experiment)

    def _check_experts(self, experiment: Any) -> Iterable[tuple[str, str]]:
        """A ``gate`` or ``gating`` this trainer does not use is reported by ``component_use``."""
        return ()


class VFPConfig(VFPSingleExpertConfig):
    """Variational flow-matching policy (VFP): a stochastic latent prior picks the mode, a gate routes
    (o, z) to experts that all see z, and an optional Sinkhorn term aligns one-step generated chunks
    with the expert chunks.

    Model components: as ``vfp_single_expert`` plus ``gate`` (gate; top-k and temperature in its arch).
    Losses: ``flow`` (l2), optionally ``alignment`` (sinkhorn) and ``gating`` (moe_gating).
    """

    experts: int = Field(
        4, ge=2, le=1024, description="Number of experts of the action decoder (the gate picks top-k)."
    )

    @property
    def num_experts(self) -> int:
        return self.experts

    def _check_experts(self, experiment: Any) -> Iterable[tuple[str, str]]:
        yield from require_model(experiment, "gate", ("gate",), "expert router")
        yield from require_loss(experiment, "gating", "moe_gating", "router balance", optional=True)


_IMPL = "vfp_il_components.trainers.vfp:VariationalFlowMatchingTrainer"

SPECS: list[ComponentSpec] = [
    ComponentSpec(
        ComponentKind.TRAINER,
        "variational_flow_matching_policy",
        VFPConfig,
        _IMPL,
        "VFP: stochastic latent prior, mixture-of-experts flow decoder seeing z, Sinkhorn alignment.",
    ),
    ComponentSpec(
        ComponentKind.TRAINER,
        "vfp_single_expert",
        VFPSingleExpertConfig,
        _IMPL,
        "VFP with a single expert and no gate.",
    ),
]
