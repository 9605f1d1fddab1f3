"""Flow-matching building blocks for trainers (public; imports torch).

Conventions: ``t = 0`` is the Gaussian source ``x0``, ``t = 1`` the (normalized) action chunk ``A``;
``x_t = (1 - t) x0 + t A`` and the target velocity is ``A - x0``. A velocity function is
``velocity(x (B, H, A), t (B,)) -> (B, H, A)``. A training step and a sampler written with them::

    x0 = sample_noise(tuple(actions.shape), actions.device, settings.noise_std)
    t = sample_times(settings, actions.shape[0], actions.device)
    x_t, target = straight_path(x0, actions, t)
    loss = masked_mse(velocity(x_t, t), target, batch.get("action_is_pad")).mean()
    ...
    chunk = integrate(velocity, sample_noise(shape, device, settings.noise_std, generator), steps, settings.integrator)

``FlowSettings`` (the trainer config's ``flow`` section) lives in the light
:mod:`vfp_il_components.settings` and is re-exported here.

Few-step options (``flow.prediction: endpoint``, ``flow.shortcut``): a trainer writes its network call once
as a :data:`FlowNet` ``net(x, t, d, rows)`` and lets :func:`flow_regression` build the training pair and
:func:`sample_flow` (or :func:`one_step` for a differentiable single step) the sampler; with the defaults
they reduce exactly to the velocity recipe above. A shortcut network takes the step size ``d`` as
:func:`step_features` appended to its condition vector (:func:`step_input_dim` extra inputs)::

    predicted, target = flow_regression(settings, net, actions)
    loss = flow_loss(predicted, target, batch.get("action_is_pad"))
    chunk = sample_flow(settings, net, x0, steps)

Reflow distillation (``flow.distill``): a :class:`ReflowTeacher` (a trained policy, loaded at the first
training batch) replaces the batch's ``(noise, chunk)`` pair by ``(x0, teacher(x0 | o))``; a trainer takes
its training pair from :func:`training_pair` and passes ``x0`` on::

    x0, actions, is_pad = training_pair(batch, settings, teacher)
    predicted, target = flow_regression(settings, net, actions, x0)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from vfp.protocols import Batch
from vfp_il_components.settings import DistillSettings, FlowSettings, MeanFlowSettings

if TYPE_CHECKING:
    from vfp.engine import TrainerContext

__all__ = [
    "ACTION_KEY",
    "ALL_ROWS",
    "OBSERVATION_PREFIX",
    "STEP_FEATURES",
    "DistillSettings",
    "FlowNet",
    "FlowSettings",
    "MeanFlowSettings",
    "ReflowTeacher",
    "TeacherError",
    "VelocityFn",
    "flow_regression",
    "integrate",
    "masked_mse",
    "mean_flow_regression",
    "observation_of",
    "one_step",
    "reflow_teacher",
    "sample_flow",
    "sample_noise",
    "sample_times",
    "step_features",
    "step_input_dim",
    "straight_path",
    "takes_step_size",
    "training_pair",
]

ACTION_KEY = "action"
"""Batch key of the action chunk (B, H, A); its padding mask is ``action_is_pad`` (B, H)."""

OBSERVATION_PREFIX = "observation."
"""Prefix of the batch keys a policy sees (``observation.state``, ``observation.image``, ...)."""

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``velocity(x_t (B, H, A), t (B,)) -> (B, H, A)``."""

FlowNet = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None, slice], torch.Tensor]
"""``net(x (R, H, A), t (R,), d (R,) or None, rows) -> (R, H, A)``: the raw network output for the batch rows
``rows`` (a slice of the rows the trainer's conditions were computed for; :data:`ALL_ROWS` for all of them).
``d`` is the step size, given only with ``flow.shortcut`` (feed :func:`step_features` of it to the network).
The output is a velocity, or the chunk itself with ``flow.prediction: endpoint``."""

ALL_ROWS = slice(None)
"""The ``rows`` argument of a :data:`FlowNet` call on the whole batch."""

STEP_FEATURES = 8
"""Size of :func:`step_features` (the extra condition inputs of a shortcut network)."""

_ADAPTIVE_C = 1e-3
"""The constant c of the mean flow's adaptive loss weight 1 / (||delta||^2 + c)^p (the paper's)."""

_ENDPOINT_MIN_GAP = 1e-3
"""Smallest ``1 - t`` the endpoint sampler divides by (only reached by a Heun corrector at t = 1, which is skipped)."""


def observation_of(batch: Mapping[str, torch.Tensor]) -> Batch:
    """The ``observation.*`` entries of a batch (what a policy sees)."""
    return {key: value for key, value in batch.items() if key.startswith(OBSERVATION_PREFIX)}


def sample_times(
    settings: FlowSettings, batch: int, device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Training times ``(B,)`` in (0, 1) from ``settings.time_distribution``."""
    if settings.time_distribution == "uniform":
        t = torch.rand(batch, generator=generator)
    elif settings.time_distribution == "beta":
        # torch's Beta sampler has no generator argument: it draws from the global (seeded) stream
        alpha = torch.full((batch,), settings.beta_a)
        beta = torch.full((batch,), settings.beta_b)
        t = torch.distributions.Beta(alpha, beta).sample()
    else:
        normal = torch.randn(batch, generator=generator)
        t = torch.sigmoid(settings.logit_normal_mean + settings.logit_normal_std * normal)
    return t.clamp(1e-5, 1.0 - 1e-5).to(device)


def sample_noise(
    shape: tuple[int, ...], device: torch.device, std: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Gaussian source samples ``x0`` (drawn on the CPU with ``generator`` when given, for reproducibility)."""
    if generator is not None:
        return (std * torch.randn(shape, generator=generator)).to(device)
    return std * torch.randn(shape, device=device)


def straight_path(x0: torch.Tensor, actions: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_t, target velocity)`` on the straight path from ``x0`` to ``actions`` at times ``t`` (B,)."""
    tt = t.to(actions.dtype).reshape(-1, *([1] * (actions.ndim - 1)))
    return (1.0 - tt) * x0 + tt * actions, actions - x0


def integrate(velocity: VelocityFn, x0: torch.Tensor, steps: int, integrator: str = "euler") -> torch.Tensor:
    """Integrate ``dx/dt = velocity(x, t)`` from ``t = 0`` to ``1`` in ``steps`` equal steps.

    ``euler`` evaluates the velocity once per step; ``heun`` (explicit trapezoid) twice.
    """
    if steps < 1:
        raise ValueError(f"integration steps must be >= 1, got {steps}")
    if integrator not in ("euler", "heun"):
        raise ValueError(f"unknown integrator {integrator!r}; expected euler or heun")
    x = x0
    dt = 1.0 / steps
    batch = x0.shape[0]
    for i in range(steps):
        t = torch.full((batch,), i * dt, device=x.device, dtype=x.dtype)
        v = velocity(x, t)
        if integrator == "heun":
            predicted = x + dt * v
            v_next = velocity(predicted, t + dt)
            v = 0.5 * (v + v_next)
        x = x + dt * v
    return x


def masked_mse(predicted: torch.Tensor, target: torch.Tensor, is_pad: torch.Tensor | None) -> torch.Tensor:
    """Per-sample mean squared error ``(B,)`` over unpadded chunk steps."""
    error = (predicted.float() - target.float()).square().mean(dim=-1)
    if is_pad is None:
        return error.mean(dim=-1)
    valid = (~is_pad.bool()).float()
    return (error * valid).sum(dim=-1) / valid.sum(dim=-1).clamp_min(1.0)


def takes_step_size(settings: FlowSettings) -> bool:
    """Whether the network also sees the step size ``d`` (``flow.shortcut`` or ``flow.mean_flow``)."""
    return settings.shortcut is not None or settings.mean_flow is not None


def step_input_dim(settings: FlowSettings) -> int:
    """Extra condition inputs the flow network needs for the step size: :data:`STEP_FEATURES` with a shortcut or
    a mean flow."""
    return STEP_FEATURES if takes_step_size(settings) else 0


def step_features(d: torch.Tensor) -> torch.Tensor:
    """Fixed features ``(B, STEP_FEATURES)`` of step sizes ``d`` (B,) in (0, 1]: ``d``, ``log2 d / 8`` and sines
    and cosines of ``pi j log2(d) / 8`` (j = 1..3), so that the powers of two down to 2^-12 stay distinct."""
    d = d.float().clamp_min(2.0**-16)
    e = torch.log2(d) / 8.0
    parts = [d, e]
    for j in (1, 2, 3):
        parts += [torch.sin(torch.pi * j * e), torch.cos(torch.pi * j * e)]
    return torch.stack(parts, dim=-1)


def _column(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def flow_regression(
    settings: FlowSettings,
    net: FlowNet,
    actions: torch.Tensor,
    x0: torch.Tensor | None = None,
    t: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(predicted, target)`` of the flow loss on a batch of chunks ``actions`` (B, H, A), per ``settings``.

    - ``velocity`` (default): ``net(x_t, t)`` against ``A - x0`` (exactly the plain recipe);
    - ``endpoint``: ``net(x_t, t)`` against ``A`` (the velocity is derived at sampling);
    - ``shortcut``: the first ``round(bootstrap_fraction * B)`` rows regress ``net(x_t, t, 2d)`` onto the
      average velocity of two chained network steps of size ``d`` from ``x_t`` (computed without gradient;
      ``t`` a multiple of ``d``); the other rows regress ``net(x_t, t, 2^-levels)`` onto ``A - x0``.

    - ``mean_flow``: see :func:`mean_flow_regression`.

    ``x0`` and ``t`` (B,) default to draws from ``settings`` (the noise first, then the times).
    """
    batch = actions.shape[0]
    if x0 is None:
        x0 = sample_noise(tuple(actions.shape), actions.device, settings.noise_std)
    if t is None:
        t = sample_times(settings, batch, actions.device)
    if settings.mean_flow is not None:
        return mean_flow_regression(settings, net, actions, x0, t)
    shortcut = settings.shortcut
    if shortcut is None:
        x_t, velocity_target = straight_path(x0, actions, t)
        predicted = net(x_t, t, None, ALL_ROWS)
        return predicted, (actions if settings.prediction == "endpoint" else velocity_target)
    n_boot = min(batch - 1, max(1, round(shortcut.bootstrap_fraction * batch))) if batch > 1 else 0
    levels = shortcut.levels
    smallest = 2.0**-levels
    d = torch.full((batch,), smallest, device=actions.device, dtype=t.dtype)
    t = t.clone()
    if n_boot:
        # target step 2 * half = 2^k / 2^levels, k = 1..levels; t = i * half with t + 2 * half <= 1
        k = torch.randint(1, levels + 1, (n_boot,), device=actions.device)
        half = torch.pow(2.0, (k - 1 - levels).to(t.dtype))
        sections = torch.round(1.0 / half)
        index = torch.floor(torch.rand(n_boot, device=actions.device, dtype=t.dtype) * (sections - 1.0))
        t[:n_boot] = index * half
        d[:n_boot] = 2.0 * half
    x_t, target = straight_path(x0, actions, t)
    if n_boot:
        rows = slice(0, n_boot)
        with torch.no_grad():
            x_b, t_b, half_b = x_t[rows], t[rows], d[rows] / 2.0
            v1 = net(x_b, t_b, half_b, rows)
            v2 = net(x_b + _column(half_b, x_b) * v1, t_b + half_b, half_b, rows)
            target = torch.cat([(0.5 * (v1 + v2)).to(target.dtype), target[n_boot:]])
    return net(x_t, t, d, ALL_ROWS), target


def mean_flow_regression(
    settings: FlowSettings, net: FlowNet, actions: torch.Tensor, x0: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(predicted, target)`` of a mean flow (``flow.mean_flow``; Geng et al. 2025, arXiv 2505.13447).

    ``u(x_t, t, d)`` is the average velocity over ``[t, t + d]``: ``d u = integral of v`` over it. Differentiating in
    ``t`` with the end ``r = t + d`` fixed gives ``u = v + d du/dt``, where ``du/dt = v . grad_x u + du/dt - du/dd``
    is the total derivative along the flow: one forward-mode Jacobian-vector product (``torch.func.jvp``) with
    the tangent ``(v, 1, -1)`` on ``(x_t, t, d)``, ``v = A - x0`` the conditional velocity. The first
    ``round(fraction * B)`` rows draw a second time ``r`` and use ``(min, max - min)`` as ``(t, d)``, with the
    stop-gradient target ``v + d du/dt``; the other rows have ``d = 0`` and regress ``u`` onto ``v`` (plain flow
    matching: the average over an empty step is the instantaneous velocity).
    """
    assert settings.mean_flow is not None
    batch = actions.shape[0]
    n_mean = min(batch, max(1, round(settings.mean_flow.fraction * batch)))
    other = sample_times(settings, n_mean, actions.device).to(t.dtype)
    start, end = torch.minimum(t[:n_mean], other), torch.maximum(t[:n_mean], other)
    t = torch.cat([start, t[n_mean:]])
    d = torch.cat([end - start, torch.zeros_like(t[n_mean:])])
    x_t, velocity = straight_path(x0, actions, t)
    head = slice(0, n_mean)

    def average_velocity(x: torch.Tensor, time: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        return net(x, time, step, head)

    tangents = (velocity[head], torch.ones_like(t[head]), -torch.ones_like(d[head]))
    outputs = torch.func.jvp(average_velocity, (x_t[head], t[head], d[head]), tangents)
    u_head, du_dt = outputs[0], outputs[1]
    target_head = (velocity[head] + _column(d[head], velocity) * du_dt).detach().to(velocity.dtype)
    predicted, target = u_head, target_head
    if n_mean < batch:
        u_tail = net(x_t[n_mean:], t[n_mean:], d[n_mean:], slice(n_mean, None))
        predicted, target = torch.cat([u_head, u_tail]), torch.cat([target_head, velocity[n_mean:]])
    power = settings.mean_flow.adaptive_weight
    if power > 0:
        # the paper's adaptive loss w ||delta||^2 with w = sg(1 / (||delta||^2 + c)^p): the residual scaled by sqrt(w)
        error = (predicted - target).detach().float().flatten(1).square().sum(-1)
        scale = _column((error + _ADAPTIVE_C).pow(-0.5 * power), predicted)
        predicted = target + scale * (predicted - target)
    return predicted, target


def _endpoint_velocity(net: FlowNet) -> VelocityFn:
    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        gap = _column((1.0 - t).clamp_min(_ENDPOINT_MIN_GAP), x)
        return (net(x, t, None, ALL_ROWS) - x) / gap

    return velocity


def sample_flow(settings: FlowSettings, net: FlowNet, x0: torch.Tensor, steps: int) -> torch.Tensor:
    """Integrate from ``x0`` (t = 0) to t = 1 in ``steps`` equal steps with the network's parametrization.

    - ``velocity``: :func:`integrate` with ``settings.integrator`` (unchanged);
    - ``endpoint``: the velocity ``(A_hat(x_t, t) - x_t) / (1 - t)``; an Euler step from ``t`` lands on
      ``x_t + dt / (1 - t) (A_hat - x_t)`` (one step: ``A_hat(x0, 0)``). Heun's corrector is skipped on the last
      step, whose end t = 1 has no defined velocity;
    - ``shortcut`` and ``mean_flow``: Euler steps ``x + d * net(x, t, d)`` with ``d = 1 / steps``.
    """
    if steps < 1:
        raise ValueError(f"integration steps must be >= 1, got {steps}")
    if takes_step_size(settings):
        batch, dt = x0.shape[0], 1.0 / steps
        d = torch.full((batch,), dt, device=x0.device, dtype=x0.dtype)
        x = x0
        for i in range(steps):
            t = torch.full((batch,), i * dt, device=x0.device, dtype=x0.dtype)
            x = x + dt * net(x, t, d, ALL_ROWS)
        return x
    if settings.prediction == "velocity":
        return integrate(lambda x, t: net(x, t, None, ALL_ROWS), x0, steps, settings.integrator)
    velocity = _endpoint_velocity(net)
    if settings.integrator == "euler":
        return integrate(velocity, x0, steps, "euler")
    x, dt, batch = x0, 1.0 / steps, x0.shape[0]
    for i in range(steps):
        t = torch.full((batch,), i * dt, device=x.device, dtype=x.dtype)
        v = velocity(x, t)
        if i < steps - 1:
            v = 0.5 * (v + velocity(x + dt * v, t + dt))
        x = x + dt * v
    return x


def one_step(settings: FlowSettings, net: FlowNet, x0: torch.Tensor) -> torch.Tensor:
    """One differentiable Euler step from ``x0`` over the whole path (what a 1-step sampler returns):
    ``x0 + v(x0, 0)``, ``A_hat(x0, 0)`` (endpoint) or ``x0 + net(x0, 0, d=1)`` (shortcut, mean flow)."""
    batch = x0.shape[0]
    zero = torch.zeros(batch, device=x0.device, dtype=x0.dtype)
    if takes_step_size(settings):
        return x0 + net(x0, zero, torch.ones_like(zero), ALL_ROWS)
    out = net(x0, zero, None, ALL_ROWS)
    return out if settings.prediction == "endpoint" else x0 + out


# -- reflow distillation -------------------------------------------------------------------------------
_DISTILL_KEY = ("trainer", "flow", "distill", "teacher")


class TeacherError(ValueError):
    """The ``flow.distill`` teacher cannot be loaded or does not fit the run; the message starts with the file and
    line of ``trainer.flow.distill.teacher`` and its key. ``vfp train`` prints it and exits 2 (bad input)."""

    vfp_exit_code: ClassVar[int] = 2


class ReflowTeacher:
    """The teacher of ``flow.distill``: a trained policy that carries noise ``x0`` to chunks ``x1`` (reflow).

    Liu, Gong, Liu, "Flow Straight and Fast: Learning to Generate and Transfer Data with Rectified Flow",
    arXiv 2209.03003 (2022): a flow trained on the coupling ``(x0, x1 = teacher ODE(x0))`` instead of
    independent pairs has straighter paths, and a straight path is integrated exactly by one Euler step.

    The policy is loaded with :func:`vfp.load_policy` at the first :meth:`pairs` call (not when the trainer is
    built, so loading or evaluating a distilled run never needs its teacher). Its sampler runs with
    ``teacher_steps`` steps, its own latent or code drawn from its own prior, and the student's noise. The
    observations and chunks cross between the two runs' normalizations (the teacher may have been trained
    on other statistics of the same features). A teacher that cannot be loaded, or whose features, history
    or horizon differ from the run's, is a :class:`TeacherError` naming ``trainer.flow.distill.teacher``.
    """

    def __init__(self, context: TrainerContext, settings: DistillSettings) -> None:
        self.context = context
        self.settings = settings
        self._policy: Any = None

    def _error(self, message: str) -> TeacherError:
        origin = self.context.config.origin_of(_DISTILL_KEY)
        where = "" if origin is None else f"{origin.file}:{origin.line}: " if origin.line else f"{origin.file}: "
        return TeacherError(f"{where}{'.'.join(_DISTILL_KEY)}: {message}")

    @property
    def policy(self) -> Any:
        """The teacher as a :class:`vfp.policy.Policy` (loaded on first use)."""
        if self._policy is None:
            from vfp import load_policy

            teacher = self.settings.teacher
            try:
                # action_steps matters only to Policy.act, which distillation does not call
                policy = load_policy(
                    teacher, device=str(self.context.device), checkpoint=self.settings.checkpoint, action_steps=1
                )
            except (RuntimeError, OSError, ValueError) as exc:  # vfp.policy.PolicyError is a RuntimeError
                raise self._error(f"cannot load the teacher {teacher!r}: {exc}") from None
            self._check(policy)
            self._policy = policy
        return self._policy

    def _check(self, policy: Any) -> None:
        info, own = policy.info, self.context.info
        teacher = self.settings.teacher
        problems = []
        if (info.horizon, info.action_dim) != (own.horizon, own.action_dim):
            problems.append(
                f"chunks of {info.horizon} x {info.action_dim} (horizon x action_dim), this run's are "
                f"{own.horizon} x {own.action_dim}"
            )
        if info.history != own.history:
            problems.append(f"an observation history of {info.history}, this run's is {own.history}")
        for key, feature in info.features.items():
            if feature.role == "action":
                continue
            mine = own.features.get(key)
            if mine is None:
                problems.append(f"observation {key!r}, which this run's data lacks")
            elif (tuple(mine.shape), mine.role) != (tuple(feature.shape), feature.role):
                problems.append(
                    f"observation {key!r} of shape {tuple(feature.shape)} ({feature.role}), this run's is "
                    f"{tuple(mine.shape)} ({mine.role})"
                )
        if "noise" not in inspect.signature(policy.trainer.sample_actions).parameters:
            problems.append(f"trainer {policy.metadata.trainer!r}, whose sample_actions takes no `noise`")
        if problems:
            raise self._error(f"the teacher {teacher!r} does not fit this run: it has " + "; ".join(problems))

    def _mode(self, key: str) -> str:
        modes = self.context.info.normalization
        return str(modes.get(key, "mean_std" if key in self.context.normalization_stats else "none"))

    @torch.no_grad()
    def pairs(self, batch: Batch, noise_std: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x0, x1)`` for a (normalized) training batch: ``x0 = noise_std * eps`` with ``eps ~ N(0, I)`` and
        ``x1`` the teacher's chunk from ``eps``, in this run's normalized action space; shaped like its chunks."""
        from vfp_il_components.data.normalization import normalize, unnormalize

        policy = self.policy
        actions = batch[ACTION_KEY]
        stats = self.context.normalization_stats
        raw: dict[str, torch.Tensor] = {}
        for key, feature in policy.info.features.items():
            if feature.role == "action":
                continue
            value = batch[key]
            if feature.role == "state":
                value = unnormalize(stats, key, value.float(), self._mode(key))
            raw[key] = value
        observation = policy.normalize_observation(raw)
        for key in raw:
            pad = batch.get(f"{key}_is_pad")
            if pad is not None:
                observation[f"{key}_is_pad"] = pad
        eps = sample_noise(tuple(actions.shape), actions.device).float()
        chunk = policy.trainer.sample_actions(observation, self.settings.teacher_steps, noise=eps)
        chunk = normalize(stats, ACTION_KEY, policy.unnormalize_actions(chunk), self._mode(ACTION_KEY))
        return (noise_std * eps).to(actions.dtype), chunk.to(actions.dtype)


def training_pair(
    batch: Batch, settings: FlowSettings, teacher: ReflowTeacher | None
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
    """``(x0, chunks, padding mask)`` a flow trainer regresses on for ``batch``.

    Without a teacher, or without gradients (validation losses): ``(None, batch chunks, their mask)``, the
    noise drawn later as usual. With a ``flow.distill`` teacher while training: the reflow coupling
    ``(x0, teacher(x0 | o), None)``; the teacher's whole chunk is its target, padded steps included.
    """
    if teacher is None or not torch.is_grad_enabled():
        return None, batch[ACTION_KEY], batch.get(f"{ACTION_KEY}_is_pad")
    x0, x1 = teacher.pairs(batch, settings.noise_std)
    return x0, x1, None


def reflow_teacher(context: TrainerContext, settings: FlowSettings) -> ReflowTeacher | None:
    """The ``flow.distill`` teacher of a trainer (not loaded yet), or None without one."""
    return None if settings.distill is None else ReflowTeacher(context, settings.distill)
