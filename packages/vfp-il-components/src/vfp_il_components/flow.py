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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from vfp.protocols import Batch
from vfp_il_components.settings import FlowSettings

__all__ = [
    "ACTION_KEY",
    "ALL_ROWS",
    "OBSERVATION_PREFIX",
    "STEP_FEATURES",
    "FlowNet",
    "FlowSettings",
    "VelocityFn",
    "flow_regression",
    "integrate",
    "masked_mse",
    "observation_of",
    "one_step",
    "sample_flow",
    "sample_noise",
    "sample_times",
    "step_features",
    "step_input_dim",
    "straight_path",
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


def step_input_dim(settings: FlowSettings) -> int:
    """Extra condition inputs the flow network needs for the step size: :data:`STEP_FEATURES` with a shortcut."""
    return STEP_FEATURES if settings.shortcut is not None else 0


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

    ``x0`` and ``t`` (B,) default to draws from ``settings`` (the noise first, then the times).
    """
    batch = actions.shape[0]
    if x0 is None:
        x0 = sample_noise(tuple(actions.shape), actions.device, settings.noise_std)
    if t is None:
        t = sample_times(settings, batch, actions.device)
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
    - ``shortcut``: Euler steps ``x + d * net(x, t, d)`` with ``d = 1 / steps``.
    """
    if steps < 1:
        raise ValueError(f"integration steps must be >= 1, got {steps}")
    if settings.shortcut is not None:
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
    ``x0 + v(x0, 0)``, ``A_hat(x0, 0)`` (endpoint) or ``x0 + net(x0, 0, d=1)`` (shortcut)."""
    batch = x0.shape[0]
    zero = torch.zeros(batch, device=x0.device, dtype=x0.dtype)
    if settings.shortcut is not None:
        return x0 + net(x0, zero, torch.ones_like(zero), ALL_ROWS)
    out = net(x0, zero, None, ALL_ROWS)
    return out if settings.prediction == "endpoint" else x0 + out
