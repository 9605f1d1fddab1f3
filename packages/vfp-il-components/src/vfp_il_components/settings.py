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

__all__ = [
    "ClosedLoopSettings",
    "DistillSettings",
    "FlowSettings",
    "Integrator",
    "MeanFlowSettings",
    "Prediction",
    "ShortcutSettings",
    "TimeDistribution",
]

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


class MeanFlowSettings(Settings):
    """Mean flow (Geng, Deng, Bai, Kolter, He 2025, arXiv 2505.13447): the network predicts the average velocity.

    ``u(x_t, t, d)`` is the average velocity over ``[t, t + d]`` (the step size ``d`` is fed as with a
    shortcut model), trained through the identity ``u = v + d du/dt`` (total derivative along the flow,
    ``t + d`` fixed), computed with a Jacobian-vector product (``torch.func.jvp``) and used as a
    stop-gradient target. A share ``fraction`` of each batch has ``d > 0`` (the smaller and the larger of two
    times); the rest ``d = 0``, plain flow matching. Sampling takes Euler steps ``x + d u(x, t, d)``.
    """

    fraction: float = Field(
        0.25,
        gt=0.0,
        le=1.0,
        description="Share of each batch trained with a step d > 0 through the JVP target (paper: 0.25); the rest "
        "is plain flow matching (d = 0).",
    )
    adaptive_weight: float = Field(
        1.0,
        ge=0.0,
        le=2.0,
        description="Power p of the adaptive loss weight sg(1 / (||u - u_tgt||^2 + 1e-3)^p) per chunk (paper: 1, "
        "which keeps the JVP target's outliers from taking over; 0: plain squared error).",
    )


class DistillSettings(Settings):
    """Rectified-flow reflow (Liu, Gong, Liu 2022, arXiv 2209.03003): distill a trained policy into a few-step student.

    The teacher (a run directory, a checkpoint file or an exported policy, loaded with ``vfp.load_policy``)
    maps the noise ``x0`` of each training row to a chunk ``x1`` with its own sampler in ``teacher_steps``
    steps (its own latent or code drawn from its prior); the student regresses the straight path between
    ``x0`` and ``x1`` instead of between independent noise and demonstrations, so its paths are straight and
    one step follows them. The teacher is loaded at the first training batch and used only there:
    validation losses, evaluation and loading the student never need it. Initialize the student from the
    teacher with ``model.<name>.init_from: TEACHER_RUN``.
    """

    teacher: str = Field(
        min_length=1,
        description="The teacher: a run directory, a checkpoint file or an exported policy folder (a relative "
        "path is taken from the working directory). Its features and horizon must be this run's.",
    )
    checkpoint: str = Field(
        "latest", pattern=r"^(latest|best|[0-9]+)$", description="The teacher run's checkpoint: latest, best or a step."
    )
    teacher_steps: int = Field(10, ge=1, le=10_000, description="Integration steps of the teacher's sampler.")


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
    mean_flow: MeanFlowSettings | None = Field(
        None,
        description="Train a mean-flow model (the network predicts the average velocity over a step, target "
        "from a Jacobian-vector product) so that one network call integrates the whole path. null: plain flow "
        "matching.",
    )
    distill: DistillSettings | None = Field(
        None,
        description="Reflow distillation: train on (noise, teacher chunk from that noise) pairs of a trained "
        "teacher policy instead of (noise, demonstration) pairs, so that one step suffices. null: no teacher.",
    )

    @model_validator(mode="after")
    def _check_few_step(self) -> FlowSettings:
        if self.shortcut is not None and self.integrator != "euler":
            raise ValueError("flow.shortcut takes steps of the trained sizes: use integrator: euler")
        if self.shortcut is not None and self.prediction != "velocity":
            raise ValueError("flow.shortcut predicts the average velocity of a step: use prediction: velocity")
        if self.mean_flow is not None:
            if self.shortcut is not None:
                raise ValueError("flow.mean_flow and flow.shortcut are two models of the step: choose one")
            if self.integrator != "euler":
                raise ValueError("flow.mean_flow takes steps of the predicted average velocity: use integrator: euler")
            if self.prediction != "velocity":
                raise ValueError("flow.mean_flow predicts the average velocity of a step: use prediction: velocity")
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
