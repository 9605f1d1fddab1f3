"""Behaviour every synthetic task shares: demos, expert, averaging failure, metrics, policy interface."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from vfp_il_components.tasks import TASK_NAMES, get_task
from vfp_il_components.tasks.base import IMAGE_KEY, STATE_KEY, RolloutOptions
from vfp_il_components.tasks.metrics import normalized_entropy

EPISODES = 200


@pytest.fixture(params=TASK_NAMES)
def task_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_unknown_task_lists_the_tasks() -> None:
    with pytest.raises(KeyError, match="mixture, avoid_obstacle, ordered_subgoals"):
        get_task("juggling")


def test_options_rebuild_the_same_task(task_name: str) -> None:
    task = get_task(task_name)
    assert get_task(task_name, **task.options()).options() == task.options()


def test_invalid_option_is_a_clear_error(task_name: str) -> None:
    with pytest.raises(TypeError, match=f"task {task_name!r}: invalid options"):
        get_task(task_name, no_such_option=1)


def test_demos_have_the_declared_shapes(task_name: str) -> None:
    task = get_task(task_name)
    episodes = task.generate_demos(5, seed=0, images=True, image_size=16)
    for episode in episodes:
        assert episode.observations["state"].shape == (len(episode), task.state_dim)
        assert episode.observations["state"].dtype == np.float32
        assert episode.observations["image"].shape == (len(episode), 16, 16, 3)
        assert episode.observations["image"].dtype == np.uint8
        assert episode.actions.shape == (len(episode), task.action_dim)
        assert len(episode) >= 16  # the default action horizon fits in every episode


def test_demo_modes_follow_the_true_weights(task_name: str) -> None:
    task = get_task(task_name)
    modes = np.array([e.mode for e in task.generate_demos(600, seed=1)])
    frequencies = np.bincount(modes, minlength=len(task.mode_names)) / len(modes)
    assert np.abs(frequencies - task.mode_weights).max() < 0.06


def test_demos_are_deterministic_per_seed(task_name: str) -> None:
    task = get_task(task_name)
    first, again, other = (task.generate_demos(3, seed=s) for s in (4, 4, 5))
    assert all(np.array_equal(a.actions, b.actions) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a.actions, b.actions) for a, b in zip(first, other, strict=False))


def test_expert_succeeds_with_the_true_mode_distribution(task_name: str) -> None:
    task = get_task(task_name)
    metrics = task.evaluate(task.expert_policy(seed=1), num_episodes=EPISODES, seed=2, history=2)
    assert metrics["success_rate"] >= 0.98
    assert metrics["off_manifold_rate"] <= 0.02
    assert metrics["mode_tv"] < 0.12
    assert metrics["mode_entropy"] == pytest.approx(normalized_entropy(task.mode_weights), abs=0.08)


def test_averaging_the_modes_fails(task_name: str, averaging_policy: Any) -> None:
    task = get_task(task_name)
    metrics = task.evaluate(averaging_policy(task), num_episodes=EPISODES, seed=2, history=2)
    assert metrics["success_rate"] <= 0.05
    assert metrics["off_manifold_rate"] >= 0.9


def test_committing_to_one_mode_succeeds_with_zero_entropy(task_name: str, single_mode_policy: Any) -> None:
    task = get_task(task_name)
    metrics = task.evaluate(single_mode_policy(task, mode=1), num_episodes=EPISODES, seed=2)
    assert metrics["success_rate"] >= 0.98
    assert metrics["mode_entropy"] == 0.0
    assert metrics[f"mode_freq/{task.mode_names[1]}"] == 1.0


def test_sinkhorn_separates_the_expert_from_the_average(task_name: str, averaging_policy: Any) -> None:
    task = get_task(task_name)
    expert = task.evaluate(task.expert_policy(seed=1), num_episodes=EPISODES, seed=3)["sinkhorn"]
    average = task.evaluate(averaging_policy(task), num_episodes=EPISODES, seed=3)["sinkhorn"]
    assert expert < 0.3 * average


def test_evaluation_is_deterministic_per_seed(task_name: str) -> None:
    task = get_task(task_name)
    first = task.evaluate(task.expert_policy(seed=1), num_episodes=50, seed=7)
    again = task.evaluate(task.expert_policy(seed=1), num_episodes=50, seed=7)
    assert first == again


def test_rollout_options_and_keywords_are_the_same_rollout(task_name: str) -> None:
    task = get_task(task_name)
    options = RolloutOptions(num_episodes=20, seed=3, history=2, action_steps=4)
    by_options = task.evaluate(task.expert_policy(seed=1), options)
    by_keywords = task.evaluate(task.expert_policy(seed=1), num_episodes=20, seed=3, history=2, action_steps=4)
    replaced = task.evaluate(
        task.expert_policy(seed=1), RolloutOptions(num_episodes=20, seed=9), seed=3, history=2, action_steps=4
    )
    assert by_options == by_keywords == replaced


def test_an_unknown_rollout_keyword_is_an_error(task_name: str) -> None:
    task = get_task(task_name)
    with pytest.raises(TypeError, match="num_episode"):
        task.rollout(task.expert_policy(), num_episode=4)


def test_options_are_the_task_s_fields(task_name: str) -> None:
    task = get_task(task_name)
    changed = {
        key: value for key, value in task.options().items() if isinstance(value, int) and not isinstance(value, bool)
    }
    name, value = next(iter(changed.items()))
    assert get_task(task_name, **{name: value + 1}).options()[name] == value + 1


def test_policy_sees_history_with_pad_mask_and_images(task_name: str) -> None:
    task = get_task(task_name)
    expert = task.expert_policy(seed=0)
    seen: list[dict[str, torch.Tensor]] = []

    def policy(obs: dict[str, torch.Tensor]) -> torch.Tensor:
        seen.append(obs)
        return expert(obs)

    task.rollout(policy, num_episodes=4, seed=0, history=3, images=True, image_size=16, action_steps=2)
    first = seen[0]
    assert first[STATE_KEY].shape == (4, 3, task.state_dim)
    assert first[f"{STATE_KEY}_is_pad"][0].tolist() == [True, True, False]
    assert torch.equal(first[STATE_KEY][:, 0], first[STATE_KEY][:, 2])  # padding repeats the first frame
    assert first[IMAGE_KEY].shape == (4, 3, 3, 16, 16)
    assert float(first[IMAGE_KEY].min()) >= 0.0
    assert float(first[IMAGE_KEY].max()) <= 1.0
    if len(seen) > 1:
        assert seen[1][f"{STATE_KEY}_is_pad"][0].tolist() == [False, False, False]


def test_policy_returning_a_wrong_shape_is_reported(task_name: str) -> None:
    task = get_task(task_name)
    with pytest.raises(ValueError, match=rf"action chunk of shape \(4, horizon, {task.action_dim}\)"):
        task.evaluate(lambda obs: torch.zeros(4, 5), num_episodes=4)


def test_policy_reset_is_called_before_each_rollout(task_name: str) -> None:
    task = get_task(task_name)

    class Counting:
        resets = 0

        def reset(self) -> None:
            self.resets += 1

        def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
            return torch.zeros(obs[STATE_KEY].shape[0], 4, task.action_dim)

    policy = Counting()
    task.rollout(policy, num_episodes=2)
    task.rollout(policy, num_episodes=2)
    assert policy.resets == 2
