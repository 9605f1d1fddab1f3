"""Light config and registration of the ``mutual_information_estimator`` trainer (no torch import).

Implementation: ``trainers/mutual_information.py``; docs/components/trainers_vq_mi.md describes it with YAML
examples.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import Field

from vfp import ComponentKind, ComponentSpec, ComponentUse, Settings, TrainerConfig
from vfp_il_components.trainers._config import LATENT_TYPES, require_model

__all__ = ["SPECS", "ModeProbeConfig", "MutualInformationEstimatorConfig"]

CRITICS = {"critic_latent": "z", "critic_joint": "[A, o]", "critic_observation": "o"}
"""The separable critics' model components and what each embeds."""


class ModeProbeConfig(Settings):
    """Does the latent identify the task's ground-truth mode? Fit a classifier of the mode from z.

    Pairs (observation, expert chunk of a known mode) come from the synthetic task at initial states,
    where every mode is plausible; a linear classifier of the mode from z is fit on half of them and
    tested on the other half. Reports its accuracy and a lower bound of I(z; mode) (H(mode) minus the
    held-out cross-entropy).
    """

    enabled: bool = Field(True, description="Run the probe in evaluate() when the data names a task.")
    samples: int = Field(
        1024, ge=8, le=10_000_000, description="Pairs drawn from the task (half fit the probe, half test it)."
    )
    fit_steps: int = Field(300, ge=1, description="Optimizer steps of the probe.")
    seed: int = Field(2000, ge=0, le=2**32 - 1, description="Seed of the task's initial conditions and modes.")


class MutualInformationEstimatorConfig(TrainerConfig):
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
        8,
        ge=1,
        le=65536,
        description="Size of z (a categorical posterior: its number of classes). Must match init_from.",
    )
    latent_sample: Literal["sample", "mean"] = Field(
        "sample",
        description="Analyse z drawn from the posterior (what the decoder sees) or its mean (class probabilities).",
    )
    embed_dim: int = Field(64, ge=1, le=65536, description="Size of the critics' embeddings (critic_joint's out_dim).")
    mine_ema_decay: float = Field(
        0.99, gt=0.0, lt=1.0, description="Moving average of MINE's partition term (its gradient bias correction)."
    )
    mode_probe: ModeProbeConfig = Field(default_factory=ModeProbeConfig)

    def component_use(self, experiment: Any) -> ComponentUse:
        """The encoder, the posterior and the three critics; no loss component (the bounds are computed here)."""
        models = {"obs_encoder", "posterior", *CRITICS}
        return ComponentUse(models=frozenset(models), losses=frozenset())

    def cross_check(self, experiment: Any) -> Iterable[tuple[str, str]]:
        yield from require_model(experiment, "obs_encoder", ("obs_encoder",), "observation features")
        yield from require_model(experiment, "posterior", LATENT_TYPES, "the latent's encoder q(z | o, A)")
        for name, inputs in CRITICS.items():
            yield from require_model(experiment, name, ("mlp",), f"critic embedding of {inputs}")


SPECS: list[ComponentSpec] = [
    ComponentSpec(
        ComponentKind.TRAINER,
        "mutual_information_estimator",
        MutualInformationEstimatorConfig,
        "vfp_il_components.trainers.mutual_information:MutualInformationTrainer",
        "InfoNCE / MINE estimate of I(z; A | o) of a policy's latent, and a probe of the mode from z.",
    ),
]
