"""Light config and registration of the ``cfg_vqvae_flow_matching`` trainer (no torch import).

Implementation: ``trainers/cfg_vqvae.py``; docs/components/trainers_vq_mi.md describes it with YAML examples.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import Field

from vfp import ComponentKind, ComponentSpec, ComponentUse, Settings, TrainerConfig
from vfp_il_components.settings import ClosedLoopSettings, FlowSettings
from vfp_il_components.trainers._config import VELOCITY_TYPES, require_loss, require_model

__all__ = ["SPECS", "CfgVqvaeFlowMatchingConfig", "CodeDropoutSchedule"]


class CodeDropoutSchedule(Settings):
    """Probability of dropping the code (training the unconditional velocity) as a function of the step.

    ``start`` until ``start_step``, then a linear (or cosine) ramp to ``end`` over ``ramp_steps`` steps,
    then ``end``. ``ramp_steps: 0`` jumps to ``end`` at ``start_step``.
    """

    start: float = Field(0.0, ge=0.0, le=1.0, description="Dropout probability before the ramp.")
    end: float = Field(0.2, ge=0.0, le=1.0, description="Dropout probability after the ramp.")
    start_step: int = Field(0, ge=0, description="Step at which the ramp begins.")
    ramp_steps: int = Field(500, ge=0, description="Length of the ramp in optimizer steps (0: a step change).")
    shape: Literal["linear", "cosine"] = Field("linear", description="Shape of the ramp.")


class CfgVqvaeFlowMatchingConfig(TrainerConfig):
    """Flow matching conditioned on VQ codes of the action chunk, with classifier-free guidance.

    Model components (names fixed): ``obs_encoder`` (obs_encoder), ``action_encoder`` (mlp on vectors:
    ``[flattened chunk, observation feature] -> code_dim``), ``codebook`` (vq_codebook), ``prior``
    (categorical_head over the codes given the observation feature) and ``decoder`` (mlp or
    chunk_transformer on action chunks with a time input, conditioned on ``[observation feature, code,
    keep flag]``). Loss: ``flow`` (l2, the velocity regression).
    """

    code_dim: int = Field(16, ge=1, le=65536, description="Size of the code vectors (the codebook's latent_dim).")
    encode_observation: bool = Field(
        True, description="The action encoder also sees the observation feature (q(c | o, A)); false: q(c | A)."
    )
    prior_weight: float = Field(1.0, ge=0.0, description="Weight of the prior's cross-entropy on the posterior codes.")
    code_dropout: CodeDropoutSchedule = Field(
        default_factory=CodeDropoutSchedule,
        description="Schedule of the code dropout that trains the unconditional velocity.",
    )
    guidance_scale: float = Field(
        1.5, description="w of v = v_uncond + w (v_cond - v_uncond) at sampling (0: unconditional, 1: conditional)."
    )
    prior_temperature: float = Field(
        1.0, ge=0.0, description="Temperature of the code drawn from the prior at sampling (0: the most likely code)."
    )
    flow: FlowSettings = Field(default_factory=FlowSettings, description="Flow-matching path, time and sampling.")
    evaluation: ClosedLoopSettings = Field(
        default_factory=ClosedLoopSettings, description="Closed-loop (or offline) evaluation of the policy."
    )

    def component_use(self, experiment: Any) -> ComponentUse:
        models = {"obs_encoder", "action_encoder", "codebook", "prior", "decoder"}
        return ComponentUse(models=frozenset(models), losses=frozenset({"flow"}))

    def cross_check(self, experiment: Any) -> Iterable[tuple[str, str]]:
        yield from require_model(experiment, "obs_encoder", ("obs_encoder",), "observation features")
        yield from require_model(experiment, "action_encoder", ("mlp",), "code encoder of the action chunk")
        yield from require_model(experiment, "codebook", ("vq_codebook",), "VQ codebook")
        yield from require_model(experiment, "prior", ("categorical_head",), "prior over codes p(c | o)")
        yield from require_model(experiment, "decoder", VELOCITY_TYPES, "velocity network")
        yield from require_loss(experiment, "flow", "l2", "flow-matching regression")


SPECS: list[ComponentSpec] = [
    ComponentSpec(
        ComponentKind.TRAINER,
        "cfg_vqvae_flow_matching",
        CfgVqvaeFlowMatchingConfig,
        "vfp_il_components.trainers.cfg_vqvae:CfgVqvaeFlowMatchingTrainer",
        "Flow matching on VQ codes of the action chunk with a categorical prior and classifier-free guidance.",
    ),
]
