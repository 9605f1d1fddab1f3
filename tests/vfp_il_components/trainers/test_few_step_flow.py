"""Few-step options of the flow trainers (``flow.prediction: endpoint``, ``flow.shortcut``): config validation,
the regression targets and samplers of :mod:`vfp_il_components.flow`, and every trainer's exact sampling path."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from flow_policy_helpers import bimodal_batch, build, naive_experiment, observations, vfp_experiment
from test_cfg_vqvae_trainer import bimodal_batch as cfg_batch
from test_cfg_vqvae_trainer import toy_trainer as cfg_trainer

from vfp._plugins import get_host
from vfp.config import ConfigError, validate_data
from vfp_il_components.flow import (
    ALL_ROWS,
    STEP_FEATURES,
    flow_regression,
    integrate,
    mean_flow_regression,
    one_step,
    sample_flow,
    step_features,
    straight_path,
)
from vfp_il_components.settings import FlowSettings, MeanFlowSettings, ShortcutSettings

OPTIONS: dict[str, dict[str, Any]] = {
    "velocity": {},
    "endpoint": {"prediction": "endpoint"},
    "endpoint_heun": {"prediction": "endpoint", "integrator": "heun"},
    "shortcut": {"shortcut": {"levels": 3}},
    "mean_flow": {"mean_flow": {"fraction": 0.5}},
}


# -- config ---------------------------------------------------------------------------------------------
def test_defaults_are_plain_velocity_flow_matching() -> None:
    settings = FlowSettings()
    assert settings.prediction == "velocity"
    assert settings.shortcut is None


@pytest.mark.parametrize(
    ("flow", "message"),
    [
        ({"prediction": "x0"}, "prediction"),
        ({"shortcut": {"levels": 0}}, "levels"),
        ({"shortcut": {"bootstrap_fraction": 1.0}}, "bootstrap_fraction"),
        ({"shortcut": {"levels": 3}, "integrator": "heun"}, "integrator: euler"),
        ({"shortcut": {}, "prediction": "endpoint"}, "prediction: velocity"),
        ({"shortcut": {"level": 3}}, "level"),
        ({"mean_flow": {"fraction": 0.0}}, "fraction"),
        ({"mean_flow": {}, "shortcut": {}}, "choose one"),
        ({"mean_flow": {}, "integrator": "heun"}, "integrator: euler"),
        ({"mean_flow": {}, "prediction": "endpoint"}, "prediction: velocity"),
    ],
)
def test_invalid_few_step_settings_are_config_errors(flow: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_data(naive_experiment(flow=flow), get_host().registry, "<test>")


def test_valid_few_step_settings_validate_for_every_flow_trainer() -> None:
    registry = get_host().registry
    for flow in OPTIONS.values():
        validate_data(naive_experiment(flow=flow), registry, "<test>")
        data = vfp_experiment()
        data["trainer"]["flow"] = flow
        validate_data(data, registry, "<test>")


# -- flow.py building blocks ----------------------------------------------------------------------------
def test_step_features_separate_the_powers_of_two() -> None:
    d = torch.tensor([2.0**-k for k in range(13)])
    features = step_features(d)
    assert features.shape == (13, STEP_FEATURES)
    assert torch.cdist(features, features).add(torch.eye(13)).min() > 0.05


def test_default_regression_is_the_straight_path_velocity_pair() -> None:
    actions, x0, t = torch.randn(8, 3, 2), torch.randn(8, 3, 2), torch.rand(8)

    def net(x: torch.Tensor, time: torch.Tensor, d: torch.Tensor | None, rows: slice) -> torch.Tensor:
        assert d is None
        assert rows == ALL_ROWS
        return 2 * x + time[:, None, None]

    predicted, target = flow_regression(FlowSettings(), net, actions, x0, t)
    x_t, velocity = straight_path(x0, actions, t)
    assert torch.equal(predicted, net(x_t, t, None, ALL_ROWS))
    assert torch.equal(target, velocity)
    _, endpoint_target = flow_regression(FlowSettings(prediction="endpoint"), net, actions, x0, t)
    assert torch.equal(endpoint_target, actions)


def test_shortcut_targets_are_two_chained_half_steps_on_the_step_grid() -> None:
    """With the field v(x) = -x, two Euler steps of size h average to -x (1 - h / 2): the bootstrap target."""
    torch.manual_seed(0)
    settings = FlowSettings(shortcut=ShortcutSettings(levels=3, bootstrap_fraction=0.5))
    calls: list[tuple[torch.Tensor, torch.Tensor, slice]] = []

    def net(x: torch.Tensor, time: torch.Tensor, d: torch.Tensor | None, rows: slice) -> torch.Tensor:
        assert d is not None
        assert d.shape == time.shape == x.shape[:1]
        calls.append((time.clone(), d.clone(), rows))
        return -x

    actions, x0 = torch.randn(64, 2, 1), torch.randn(64, 2, 1)
    predicted, target = flow_regression(settings, net, actions, x0)
    (t1, half1, rows1), (t2, half2, rows2), (t, d, rows) = calls
    assert rows1 == rows2 == slice(0, 32)
    assert rows == ALL_ROWS
    assert torch.equal(half1, half2)
    assert torch.allclose(t2, t1 + half1)
    # the bootstrap rows: t a multiple of the half step, t + 2 * half <= 1, 2 * half a power of two in [1/4, 1]
    assert torch.allclose(d[:32], 2 * half1)
    assert set(d[:32].tolist()) <= {0.25, 0.5, 1.0}
    assert len(set(d[:32].tolist())) > 1
    assert torch.allclose(t[:32] / half1, (t[:32] / half1).round())
    assert (t[:32] + d[:32] <= 1.0 + 1e-6).all()
    x_t, velocity = straight_path(x0, actions, t)
    expected = -x_t[:32] * (1 - half1[:, None, None] / 2)
    assert torch.allclose(target[:32], expected, atol=1e-6)
    # the flow-matching rows: the smallest step and the plain velocity target
    assert torch.equal(d[32:], torch.full((32,), 1 / 8))
    assert torch.equal(target[32:], velocity[32:])
    assert torch.equal(predicted, -x_t)


def test_mean_flow_target_is_the_velocity_plus_d_times_the_total_time_derivative() -> None:
    """With u(x, t, d) = t x + d^2, du/dt along the flow (end fixed) is t v + x - 2 d: the target is
    v + d (t v + x - 2 d) on the rows with d > 0, whose (t, t + d) are the smaller and larger of two times."""
    torch.manual_seed(0)
    settings = FlowSettings(mean_flow=MeanFlowSettings(fraction=0.5, adaptive_weight=0.0))
    calls: list[tuple[torch.Tensor, torch.Tensor, slice]] = []

    def net(x: torch.Tensor, time: torch.Tensor, d: torch.Tensor | None, rows: slice) -> torch.Tensor:
        assert d is not None
        calls.append((time, d, rows))
        return time[:, None, None] * x + d[:, None, None] ** 2

    actions, x0, t = torch.randn(8, 3, 2), torch.randn(8, 3, 2), torch.rand(8)
    predicted, target = flow_regression(settings, net, actions, x0, t.clone())
    (t_head, d_head, rows_head), (t_tail, d_tail, rows_tail) = calls
    assert (rows_head, rows_tail) == (slice(0, 4), slice(4, None))
    assert (d_head > 0).all()
    assert torch.equal(d_tail, torch.zeros(4))
    assert torch.equal(t_tail, t[4:])
    assert (t_head <= t[:4]).all()
    assert ((t_head == t[:4]) | (t_head + d_head - t[:4]).abs().lt(1e-6)).all()  # t is one end of the step
    times, steps = torch.cat([t_head, t_tail]).detach(), torch.cat([d_head, d_tail]).detach()
    x_t, v = straight_path(x0, actions, times)
    col = times[:, None, None]
    step = steps[:, None, None]
    assert torch.allclose(predicted, col * x_t + step**2)
    assert torch.allclose(target, v + step * (col * v + x_t - 2 * step), atol=1e-6)
    assert not target.requires_grad


def test_mean_flow_adaptive_weight_scales_the_residual() -> None:
    weights = torch.nn.Parameter(torch.tensor(2.0))

    def net(x: torch.Tensor, time: torch.Tensor, d: torch.Tensor | None, rows: slice) -> torch.Tensor:
        return weights * x

    actions, x0, t = torch.randn(6, 3, 2), torch.randn(6, 3, 2), torch.rand(6)
    plain = FlowSettings(mean_flow=MeanFlowSettings(fraction=1.0, adaptive_weight=0.0))
    weighted = FlowSettings(mean_flow=MeanFlowSettings(fraction=1.0, adaptive_weight=1.0))
    torch.manual_seed(1)
    u, target = mean_flow_regression(plain, net, actions, x0, t)
    torch.manual_seed(1)
    scaled, same_target = mean_flow_regression(weighted, net, actions, x0, t)
    assert torch.allclose(target, same_target)
    squared = (u - target).detach().flatten(1).square().sum(-1)
    expected = target + (u - target) / (squared + 1e-3).sqrt()[:, None, None]
    assert torch.allclose(scaled, expected, atol=1e-6)
    scaled.sum().backward()
    assert weights.grad is not None


def test_endpoint_sampler_lands_on_a_perfect_endpoint_in_any_number_of_steps() -> None:
    chunk, x0 = torch.randn(5, 3, 2), torch.randn(5, 3, 2)

    def net(x: torch.Tensor, time: torch.Tensor, d: torch.Tensor | None, rows: slice) -> torch.Tensor:
        return chunk

    for integrator in ("euler", "heun"):
        settings = FlowSettings(prediction="endpoint", integrator=integrator)
        for steps in (1, 2, 7):
            assert torch.allclose(sample_flow(settings, net, x0, steps), chunk, atol=1e-5)
    assert torch.equal(one_step(FlowSettings(prediction="endpoint"), net, x0), chunk)


def test_shortcut_sampler_passes_the_step_size_and_velocity_sampler_is_integrate() -> None:
    x0 = torch.randn(4, 2, 1)
    seen: list[float] = []

    def net(x: torch.Tensor, time: torch.Tensor, d: torch.Tensor | None, rows: slice) -> torch.Tensor:
        if d is not None:
            seen.append(float(d[0]))
        return torch.ones_like(x) * (1 + time[:, None, None])

    for shortcut in (FlowSettings(shortcut=ShortcutSettings(levels=3)), FlowSettings(mean_flow=MeanFlowSettings())):
        seen.clear()
        assert torch.allclose(sample_flow(shortcut, net, x0, 4), x0 + 1 + (0 + 0.25 + 0.5 + 0.75) / 4)
        assert seen == [0.25] * 4
        assert torch.allclose(one_step(shortcut, net, x0), x0 + 1)
        assert seen[-1] == 1.0
    for integrator in ("euler", "heun"):
        settings = FlowSettings(integrator=integrator)
        expected = integrate(lambda x, t: net(x, t, None, ALL_ROWS), x0, 3, integrator)
        assert torch.equal(sample_flow(settings, net, x0, 3), expected)


# -- every trainer with every option: one training step, exact sampling ---------------------------------
def _naive(flow: dict[str, Any]) -> Any:
    torch.manual_seed(0)
    return build(naive_experiment(flow=flow))


def _vfp(flow: dict[str, Any], experts: int = 2) -> Any:
    torch.manual_seed(0)
    data = vfp_experiment(experts=experts)
    data["trainer"]["flow"] = flow
    return build(data)


@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("kind", ["naive", "vfp", "vfp_single_expert", "cfg_vqvae"])
def test_every_trainer_trains_and_samples_exactly_with_every_option(kind: str, option: str) -> None:
    flow = OPTIONS[option]
    generator = torch.Generator().manual_seed(0)
    if kind == "cfg_vqvae":
        trainer = cfg_trainer(flow=flow)
        batch, obs = cfg_batch(32, generator), None
    else:
        trainer = _naive(flow) if kind == "naive" else _vfp(flow, 1 if kind == "vfp_single_expert" else 2)
        batch, obs = bimodal_batch(32, generator), observations(6)
    terms, _ = trainer.compute_losses(batch)
    loss = sum(terms.values())
    assert torch.isfinite(loss)
    loss.backward()
    trainer.context.models.eval()
    if obs is None:
        obs = {key: value[:6] for key, value in batch.items() if key.startswith("observation.")}
    noise = torch.randn(6, trainer.horizon, trainer.action_dim)
    for steps in (1, 3):
        first = trainer.sample_actions(obs, steps, noise=noise, generator=torch.Generator().manual_seed(1))
        again = trainer.sample_actions(obs, steps, noise=noise, generator=torch.Generator().manual_seed(1))
        assert first.shape == noise.shape
        assert torch.isfinite(first).all()
        assert torch.equal(first, again)
