"""Config blocks a flow-matching trainer's light config reuses (public; no torch import).

A third-party trainer's config model nests them as its own sections, so its YAML reads like the
built-in trainers' (``flow: {...}``, ``evaluation: {...}``) and it is validated the same way::

    from pydantic import Field
    from vfp import TrainerConfig
    from vfp_il_components.settings import ClosedLoopSettings, FlowSettings

    class DiffusionConfig(TrainerConfig):
        flow: FlowSettings = Field(default_factory=FlowSettings)
        evaluation: ClosedLoopSettings = Field(default_factory=ClosedLoopSettings)

The heavy blocks that use them are :mod:`vfp_il_components.flow` (``sample_times(settings.flow, ...)``)
and :mod:`vfp_il_components.evaluation` (``evaluate_policy(context, settings.evaluation, ...)``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from vfp import Settings

__all__ = ["ClosedLoopSettings", "FlowSettings", "Integrator", "Prediction", "ShortcutSettings", "TimeDistribution"]

TimeDistribution = Literal["uniform", "beta", "logit_normal"]
"""How training times are drawn (see :attr:`FlowSettings.time_distribution`)."""

Integrator = Literal["euler", "heun"]
"""ODE integrator of the sampler (see :func:`vfp_il_components.flow.integrate`)."""


Prediction = Literal["velocity", "endpoint"]
"""What the flow network outputs (see :attr:`FlowSettings.prediction`)."""


class ShortcutSettings(Settings):
    """Shortcut model (Frans et al. 2024, arXiv 2410.12557): the network also sees the step size ``d``.

    Step sizes are powers of two ``d = 2^k / 2^levels`` (k = 0..levels). The flow-matching rows train the
    smallest step ``d = 2^-levels`` on ``A - x0``; a ``bootstrap_fraction`` of each batch trains a step
    ``2d`` on the average of two chained steps of size ``d`` taken by the network itself (no gradient
    through the target), at times that are multiples of ``d``. Sampling with N steps passes ``d = 1/N``,
    so one network call with ``d = 1`` jumps from the noise to the chunk.
    """

    levels: int = Field(
        7, ge=1, le=12, description="Number of step-size doublings: the smallest step is 2^-levels (7: 1/128)."
    )
    bootstrap_fraction: float = Field(
        0.25,
        gt=0.0,
        lt=1.0,
        description="Share of each batch trained on the self-consistency target (the rest on flow matching).",
    )


class FlowSettings(Settings):
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
    num_steps: int = Field(
        10, ge=1, le=100_000, description="Integration steps at evaluation unless `vfp eval --steps` says."
    )
    integrator: Integrator = Field("euler", description="euler (1 evaluation per step) or heun (2 per step).")
    prediction: Prediction = Field(
        "velocity",
        description="What the network outputs: velocity (regressed onto A - x0) or endpoint (the chunk A itself, "
        "regressed onto A; the sampler's velocity is (A_hat - x_t) / (1 - t)). endpoint does not have to cancel "
        "the noise in one step.",
    )
    shortcut: ShortcutSettings | None = Field(
        None,
        description="Train a step-size-aware shortcut model (the network also takes the step size; "
        "self-consistency target) so that few (even 1) steps integrate the whole path. null: plain flow matching.",
    )

    @model_validator(mode="after")
    def _check_few_step(self) -> FlowSettings:
        if self.shortcut is not None and self.integrator != "euler":
            raise ValueError("flow.shortcut takes steps of the trained sizes: use integrator: euler")
        if self.shortcut is not None and self.prediction != "velocity":
            raise ValueError("flow.shortcut predicts the average velocity of a step: use prediction: velocity")
        return self


class ClosedLoopSettings(Settings):
    """Evaluation: closed-loop rollouts on the data's synthetic task, or offline metrics without one."""

    episodes: int = Field(100, ge=1, le=100_000, description="Closed-loop episodes (run in parallel) per evaluation.")
    seed: int = Field(
        1000, ge=0, le=2**32 - 1, description="Seed of the evaluation episodes (initial states, expert modes)."
    )
    action_steps: int | None = Field(
        8, ge=1, description="Actions executed from each sampled chunk before re-planning (null: the whole chunk)."
    )
    offline_samples: int = Field(
        4, ge=1, le=10_000, description="Without a task: samples per held-out observation for `action_mse_best_of_k`."
    )
