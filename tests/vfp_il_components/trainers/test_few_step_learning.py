"""The few-step options learn what plain velocity flow matching does not, on a seeded two-mode problem.

The problem (``flow_policy_helpers``): the 2-step 1-D chunk is all +1 or all -1, half and half, whatever
the observation. The metric is the mean distance of 1-step samples to the nearest demonstrated mode
(|a - sign(a)|): 0 on the modes, 1 at their average. Same data, steps, seed and network for both sides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from flow_policy_helpers import build, naive_experiment, observations, save_as_run, train, vfp_experiment

STEPS = 300
DISTILL_STEPS = 150
ALIGNMENT_STEPS = 200
SEED = 0


def _trained(data: dict[str, Any]) -> Any:
    torch.manual_seed(SEED)
    trainer = build(data)
    train(trainer, STEPS, seed=SEED)
    return trainer


def _sample(trainer: Any, steps: int) -> torch.Tensor:
    return trainer.sample_actions(observations(512, seed=3), steps, generator=torch.Generator().manual_seed(5))


def _one_step(trainer: Any) -> torch.Tensor:
    return _sample(trainer, 1)


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


def test_mean_flow_naive_flow_matching_reaches_both_modes_in_one_step() -> None:
    """A mean flow's one step (d = 1) follows the flow to a mode where a velocity step lands between them (the
    velocity side is the shortcut test's: > 0.7 with the same data, steps and seed)."""
    chunks = _one_step(_trained(naive_experiment(flow={"mean_flow": {}})))
    assert _distance_to_modes(chunks) < 0.35
    positive = float((chunks.mean(dim=(1, 2)) > 0).float().mean())
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


def test_reflow_distilled_naive_student_reaches_both_modes_in_one_step(tmp_path: Path) -> None:
    """Reflow (``flow.distill``): a velocity teacher averages the modes in one step but reaches them in ten; its
    student, trained on (noise, teacher chunk from that noise) pairs, follows the straight path in one step."""
    teacher = _trained(naive_experiment())
    assert _distance_to_modes(_one_step(teacher)) > 0.7
    assert _distance_to_modes(_sample(teacher, 10)) < 0.15
    run = save_as_run(teacher, tmp_path / "teacher")
    data = naive_experiment(flow={"distill": {"teacher": str(run), "teacher_steps": 10}})
    for name in ("obs_encoder", "velocity"):
        data["model"][name]["init_from"] = str(run)
    torch.manual_seed(SEED)
    student = build(data)
    train(student, DISTILL_STEPS, seed=SEED + 1)
    chunks = _one_step(student)
    assert _distance_to_modes(chunks) < 0.3
    positive = float((chunks.mean(dim=(1, 2)) > 0).float().mean())
    assert 0.3 < positive < 0.7


def test_alignment_makes_the_sampler_it_is_computed_on_accurate() -> None:
    """The Sinkhorn term computed on 2-step chunks (``alignment_steps: null`` with ``num_steps: 2``) makes the
    2-step sampler accurate, the one on 1-step chunks the 1-step sampler; each much more than the other."""

    def aligned(alignment_steps: int | None) -> Any:
        data = vfp_experiment(experts=1)
        data["losses"]["alignment"]["weight"] = 1.0
        data["trainer"].update({"alignment_steps": alignment_steps, "flow": {"num_steps": 2}})
        torch.manual_seed(SEED)
        trainer = build(data)
        train(trainer, ALIGNMENT_STEPS, seed=SEED)
        return trainer

    on_one, on_two = aligned(1), aligned(None)
    assert on_two.alignment_steps() == 2
    one_one, one_two = _distance_to_modes(_sample(on_one, 1)), _distance_to_modes(_sample(on_one, 2))
    two_one, two_two = _distance_to_modes(_sample(on_two, 1)), _distance_to_modes(_sample(on_two, 2))
    assert two_two < 0.12
    assert two_two < 0.5 * one_two
    assert one_one < 0.25
    assert one_one < 0.5 * two_one
