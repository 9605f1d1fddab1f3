"""Light registration module of the ``cfg_vqvae_flow_matching`` and ``mutual_information_estimator`` trainers.

Config models and ComponentSpecs only (no torch import); the implementations live in
``trainers/cfg_vqvae.py`` and ``trainers/mutual_information.py``. docs/components/trainers_vq_mi.md
describes both trainers, their model components and YAML examples.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vfp import ComponentConfig, ComponentKind, ComponentSpec
from vfp_il_components.trainers.specs import (
    VELOCITY_TYPES,
    ClosedLoopSettings,
    FlowSettings,
    _require_loss,
    _require_model,
)

__all__ = [
    "SPECS",
    "CfgVqvaeFlowMatchingConfig",
    "CodeDropoutSchedule",
    "ModeProbeConfig",
    "MutualInformationEstimatorConfig",
]

LATENT_TYPES = ("gaussian_encoder", "categorical_head")


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, defer_build=True)


class CodeDropoutSchedule(_Settings):
    """Probability of dropping the code (training the unconditional velocity) as a function of the step.

    ``start`` until ``start_step``, then a linear (or cosine) ramp to ``end`` over ``ramp_steps`` steps,
    then ``end``. ``ramp_steps: 0`` jumps to ``end`` at ``start_step``.
    """

    start: float = Field(0.0, ge=0.0, le=1.0, description="Dropout probability before the ramp.")
    end: float = Field(0.2, ge=0.0, le=1.0, description="Dropout probability after the ramp.")
    start_step: int = Field(0, ge=0, description="Step at which the ramp begins.")
    ramp_steps: int = Field(500, ge=0, description="Length of the ramp in optimizer steps (0: a step change).")
    shape: Literal["linear", "cosine"] = Field("linear", description="Shape of the ramp.")


class CfgVqvaeFlowMatchingConfig(ComponentConfig):
    """Flow matching conditioned on VQ codes of the action chunk, with classifier-free guidance.

    Model components (names fixed): ``obs_encoder`` (obs_encoder), ``action_encoder`` (mlp on vectors:
    ``[flattened chunk, observation feature] -> code_dim``), ``codebook`` (vq_codebook), ``prior``
    (categorical_head over the codes given the observation feature) and ``decoder`` (mlp or
    chunk_transformer on action chunks with a time input, conditioned on ``[observation feature, code,
    keep flag]``). Loss: ``flow`` (l2, the velocity regression).
    """

    code_dim: int = Field(16, ge=1, description="Size of the code vectors (the codebook's latent_dim).")
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

    def cross_check(self, experiment: Any) -> Iterable[tuple[str, str]]:
        yield from _require_model(experiment, "obs_encoder", ("obs_encoder",), "observation features")
        yield from _require_model(experiment, "action_encoder", ("mlp",), "code encoder of the action chunk")
        yield from _require_model(experiment, "codebook", ("vq_codebook",), "VQ codebook")
        yield from _require_model(experiment, "prior", ("categorical_head",), "prior over codes p(c | o)")
        yield from _require_model(experiment, "decoder", VELOCITY_TYPES, "velocity network")
        yield from _require_loss(experiment, "flow", "l2", "flow-matching regression")


class ModeProbeConfig(_Settings):
    """Does the latent identify the task's ground-truth mode? Fit a classifier of the mode from z.

    Pairs (observation, expert chunk of a known mode) come from the synthetic task at initial states,
    where every mode is plausible; a linear classifier of the mode from z is fit on half of them and
    tested on the other half. Reports its accuracy and a lower bound of I(z; mode) (H(mode) minus the
    held-out cross-entropy).
    """

    enabled: bool = Field(True, description="Run the probe in evaluate() when the data names a task.")
    samples: int = Field(1024, ge=8, description="Pairs drawn from the task (half fit the probe, half test it).")
    fit_steps: int = Field(300, ge=1, description="Optimizer steps of the probe.")
    seed: int = Field(2000, description="Seed of the task's initial conditions and modes.")


class MutualInformationEstimatorConfig(ComponentConfig):
    """Estimates I(z; A | o) between a policy's latent z ~ q(z | o, A), the action chunk A and the observation o.

    Model components (names fixed, the same as VFP's so that ``init_from: VFP_RUN_DIR`` finds them):
    ``obs_encoder`` (obs_encoder) and ``posterior`` (gaussian_encoder or categorical_head on the
    observation feature and the action chunk), either a VFP checkpoint's (``init_from`` + ``freeze: true``)
    or trained here to maximize the bound; and the separable
    critics ``critic_latent`` (mlp: z -> 2 * embed_dim), ``critic_joint`` (mlp: [A, o] -> embed_dim) and
    ``critic_observation`` (mlp: o -> embed_dim). The bounds use in-batch negatives; the conditional MI
    is the chain-rule difference I(z; A, o) - I(z; o), each a lower bound capped at log(batch).
    """

    estimator: Literal["infonce", "mine"] = Field(
        "infonce", description="Bound maximized in training (both are reported in evaluation)."
    )
    latent_dim: int = Field(
        8, ge=1, description="Size of z (a categorical posterior: its number of classes). Must match init_from."
    )
    latent_sample: Literal["sample", "mean"] = Field(
        "sample",
        description="Analyse z drawn from the posterior (what the decoder sees) or its mean (class probabilities).",
    )
    embed_dim: int = Field(64, ge=1, description="Size of the critics' embeddings (critic_joint's out_dim).")
    mine_ema_decay: float = Field(
        0.99, gt=0.0, lt=1.0, description="Moving average of MINE's partition term (its gradient bias correction)."
    )
    mode_probe: ModeProbeConfig = Field(default_factory=ModeProbeConfig)

    def cross_check(self, experiment: Any) -> Iterable[tuple[str, str]]:
        yield from _require_model(experiment, "obs_encoder", ("obs_encoder",), "observation features")
        yield from _require_model(experiment, "posterior", LATENT_TYPES, "the latent's encoder q(z | o, A)")
        for name, inputs in (("critic_latent", "z"), ("critic_joint", "[A, o]"), ("critic_observation", "o")):
            yield from _require_model(experiment, name, ("mlp",), f"critic embedding of {inputs}")


SPECS: list[ComponentSpec] = [
    ComponentSpec(
        ComponentKind.TRAINER,
        "cfg_vqvae_flow_matching",
        CfgVqvaeFlowMatchingConfig,
        "vfp_il_components.trainers.cfg_vqvae:CfgVqvaeFlowMatchingTrainer",
        "Flow matching on VQ codes of the action chunk with a categorical prior and classifier-free guidance.",
    ),
    ComponentSpec(
        ComponentKind.TRAINER,
        "mutual_information_estimator",
        MutualInformationEstimatorConfig,
        "vfp_il_components.trainers.mutual_information:MutualInformationTrainer",
        "InfoNCE / MINE estimate of I(z; A | o) of a policy's latent, and a probe of the mode from z.",
    ),
]
