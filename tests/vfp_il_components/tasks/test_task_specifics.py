"""Task-specific ground truth: obstacle collisions, mixture modes, subgoal orders, geometry, rendering."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vfp_il_components.tasks import get_task
from vfp_il_components.tasks.avoid_obstacle import AvoidObstacleTask
from vfp_il_components.tasks.base import STATE_KEY
from vfp_il_components.tasks.geometry import move_towards, sample_polyline
from vfp_il_components.tasks.metrics import mode_frequencies, normalized_entropy, sinkhorn_distance
from vfp_il_components.tasks.mixture import MixtureTask
from vfp_il_components.tasks.ordered_subgoals import OrderedSubgoalsTask


def test_averaging_obstacle_routes_collides(averaging_policy) -> None:  # type: ignore[no-untyped-def]
    task = AvoidObstacleTask()
    result = task.rollout(averaging_policy(task), num_episodes=50, seed=0)
    assert result.off_manifold.all()
    assert (result.modes == -1).all()


def test_obstacle_mode_is_the_side_it_passed(single_mode_policy) -> None:  # type: ignore[no-untyped-def]
    task = AvoidObstacleTask()
    left = task.rollout(single_mode_policy(task, mode=0), num_episodes=20, seed=0)
    right = task.rollout(single_mode_policy(task, mode=1), num_episodes=20, seed=0)
    assert (left.modes == 0).all()
    assert (right.modes == 1).all()


def test_obstacle_left_probability_sets_the_weights() -> None:
    task = AvoidObstacleTask(left_probability=0.8)
    modes = np.array([e.mode for e in task.generate_demos(400, seed=0)])
    assert (modes == 0).mean() == pytest.approx(0.8, abs=0.05)


def test_mixture_weights_are_unequal_by_default() -> None:
    weights = MixtureTask(num_modes=3).mode_weights
    assert weights.tolist() == pytest.approx([0.5, 1 / 3, 1 / 6])


def test_mixture_demo_actions_sit_on_the_chosen_mode() -> None:
    task = MixtureTask()
    for episode in task.generate_demos(20, seed=0):
        context = episode.observations["state"][:1].astype(np.float64)
        target = task.mode_positions(context)[0, episode.mode]
        assert np.abs(episode.actions - target).max() < 5 * task.noise + 1e-6


def test_mixture_classifies_chunks_off_every_mode_as_off_manifold() -> None:
    task = MixtureTask()
    contexts = np.zeros((2, 2))
    positions = task.mode_positions(contexts)
    chunks = np.stack([np.repeat(positions[0, 2][None], 4, 0), np.zeros((4, 2))])
    assert task.classify(contexts, chunks).tolist() == [2, -1]


def test_subgoal_mode_is_the_visit_order(single_mode_policy) -> None:  # type: ignore[no-untyped-def]
    task = OrderedSubgoalsTask()
    order = task.mode_names.index("CAB")
    result = task.rollout(single_mode_policy(task, mode=order), num_episodes=10, seed=0)
    assert result.success.all()
    assert (result.modes == order).all()


def test_subgoal_demos_cover_all_six_orders() -> None:
    task = OrderedSubgoalsTask()
    modes = {e.mode for e in task.generate_demos(120, seed=0)}
    assert modes == set(range(6))


def _flip_distances(task: OrderedSubgoalsTask) -> np.ndarray:
    """Distance from each target to the demo step during which its visited flag flipped."""
    from vfp_il_components.tasks.geometry import point_segment_distance

    distances = []
    for episode in task.generate_demos(30, seed=3):
        states = episode.observations["state"].astype(np.float64)
        flipped = np.argwhere(np.diff(states[:, 8:11], axis=0) > 0.5)  # (step before the flip, target)
        for step, target in flipped:
            point = states[step, 2 + 2 * target : 4 + 2 * target]
            distances.append(point_segment_distance(point, states[step, :2], states[step + 1, :2]))
    return np.asarray(distances)


def test_subgoal_demos_pass_within_the_demo_radius_and_evaluation_accepts_more() -> None:
    precise = _flip_distances(OrderedSubgoalsTask())  # demos at 0.1, evaluation at 0.2
    assert len(precise) == 90  # 30 demos x 3 targets
    assert precise.max() < 0.1
    loose = _flip_distances(OrderedSubgoalsTask(demo_visit_radius=0.2))
    assert loose.max() > 0.15  # with the evaluation's radius the expert turns that much earlier


def test_subgoal_demo_radius_above_the_visit_radius_is_refused() -> None:
    with pytest.raises(ValueError, match="demo_visit_radius"):
        OrderedSubgoalsTask(visit_radius=0.1, demo_visit_radius=0.2)
    assert OrderedSubgoalsTask(demo_visit_radius=0.05).options()["demo_visit_radius"] == 0.05


def test_stalling_is_off_manifold() -> None:
    task = OrderedSubgoalsTask(stall_steps=10)

    def stand_still(obs: dict[str, torch.Tensor]) -> torch.Tensor:
        position = obs[STATE_KEY][:, -1, :2]
        return position[:, None, :].repeat(1, 4, 1)

    result = task.rollout(stand_still, num_episodes=5, seed=0)
    assert result.off_manifold.all()
    assert not result.success.any()


def test_sample_polyline_walks_at_constant_spacing_and_stops_at_the_end() -> None:
    points = np.array([[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]])
    samples = sample_polyline(points, 0.4, 7)[0]
    np.testing.assert_allclose(samples[:3], [[0.4, 0.0], [0.8, 0.0], [1.0, 0.2]], atol=1e-12)
    np.testing.assert_allclose(samples[-2:], [[1.0, 1.0], [1.0, 1.0]])


def test_move_towards_is_bounded_by_the_step() -> None:
    moved = move_towards(np.zeros((2, 2)), np.array([[3.0, 4.0], [0.03, 0.04]]), 0.1)
    np.testing.assert_allclose(moved, [[0.06, 0.08], [0.03, 0.04]])


def test_mode_metrics() -> None:
    frequencies = mode_frequencies(np.array([0, 0, 1, -1, -1]), 3)
    assert frequencies.tolist() == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert normalized_entropy(np.array([0.25, 0.25, 0.25, 0.25])) == pytest.approx(1.0)
    assert normalized_entropy(np.array([1.0, 0.0])) == 0.0


def test_sinkhorn_is_zero_for_equal_clouds_and_grows_with_distance() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 3))
    assert sinkhorn_distance(x, x) < 1e-4
    assert sinkhorn_distance(x, x + 0.5) < sinkhorn_distance(x, x + 1.0)


@pytest.mark.parametrize("name", ["avoid_obstacle", "ordered_subgoals", "mixture"])
def test_rendering_draws_the_agent_where_it_is(name: str) -> None:
    task = get_task(name)
    state = task.generate_demos(1, seed=0)[0].observations["state"][:1].astype(np.float64)
    image = task.render(state, image_size=64)[0]
    x, y = state[0, :2]
    col = int((x + 1.25) / 2.5 * 64)
    row = int((1.25 - y) / 2.5 * 64)
    assert image.dtype == np.uint8
    assert tuple(image[row, col]) != (245, 245, 245)  # not background
    assert (image == 245).all(axis=-1).mean() > 0.5  # mostly background
