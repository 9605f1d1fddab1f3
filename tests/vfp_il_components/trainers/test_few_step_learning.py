"""The few-step options learn what plain velocity flow matching does not, on a seeded two-mode problem.

The problem (``flow_policy_helpers``): the 2-step 1-D chunk is all +1 or all -1, half and half, whatever
the observation. The metric is the mean distance of 1-step samples to the nearest demonstrated mode
(|a - sign(a)|): 0 on the modes, 1 at their average. Same data, steps, seed and network for both sides.
"""

from __future__ import annotations

from typing import Any

import torch
from flow_policy_helpers import build, naive_experiment, observations, train, vfp_experiment

STEPS = 300
SEED = 0


def _trained(data: dict[str, Any]) -> Any:
    torch.manual_seed(SEED)
    trainer = build(data)
    train(trainer, STEPS, seed=SEED)
    return trainer


def _one_step(trainer: Any) -> torch.Tensor:
    return trainer.sample_actions(observations(512, seed=3), 1, generator=torch.Generator().manual_seed(5))


def _distance_to_modes(chunks: torch.Tensor) -> float:
    return float((chunks - chunks.sign()).abs().mean())


def test_shortcut_naive_flow_matching_reaches_both_modes_in_one_step_where_velocity_averages_them() -> None:
    velocity = _one_step(_trained(naive_experiment()))
    shortcut = _one_step(_trained(naive_experiment(flow={"shortcut": {"levels": 4}})))
    # one Euler step of the velocity field lands on the conditional mean, between the modes
    assert _distance_to_modes(velocity) > 0.7
    # one shortcut step (d = 1) follows the flow to a mode, and both modes are kept
    assert _distance_to_modes(shortcut) < 0.4
    positive = float((shortcut.mean(dim=(1, 2)) > 0).float().mean())
    assert 0.3 < positive < 0.7


def test_endpoint_vfp_one_step_chunks_sit_on_the_mode_the_latent_picks() -> None:
    def single_expert(flow: dict[str, Any]) -> dict[str, Any]:
        data = vfp_experiment(experts=1, alignment=False)
        data["trainer"]["flow"] = flow
        return data

    velocity = _one_step(_trained(single_expert({})))
    endpoint = _one_step(_trained(single_expert({"prediction": "endpoint"})))
    # the velocity decoder must cancel the noise in one step and scatters around the mode
    assert _distance_to_modes(velocity) > 0.3
    # the endpoint decoder outputs the chunk: much closer to the demonstrated modes, both kept
    assert _distance_to_modes(endpoint) < 0.25
    positive = float((endpoint.mean(dim=(1, 2)) > 0).float().mean())
    assert 0.3 < positive < 0.7
