"""The synthetic tasks as env components: the engine's rollout gives the task's own ``Task.evaluate`` numbers.

The protocols match exactly: ``reset(seed=S)`` on N environments draws the initial states as
``Task.evaluate(seed=S, num_episodes=N)`` does, the dynamics are the task's own batched ones, and an
actor that re-plans every ``action_steps`` steps sees the frames the task's loop gives its policy.
So success, off-manifold rate and every mode metric agree exactly, not within a tolerance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from env_helpers import ExpertActor, MidpointActor, midpoint_chunk

from vfp import ComponentKind, EnvConfig
from vfp._plugins import get_host
from vfp.envs import build_env, rollout
from vfp.envs.evaluate import evaluate_in_env
from vfp.policy import load_policy
from vfp_il_components.tasks import get_task
from vfp_il_components.tasks.base import STATE_KEY

EPISODES = 40
TASK_METRICS = ("success_rate", "off_manifold_rate", "mode_entropy", "mode_tv")


def shared(engine: dict[str, float], task: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    keys = [k for k in task if k in TASK_METRICS or k.startswith("mode_freq/")]
    return {k: engine[k] for k in keys}, {k: task[k] for k in keys}


def env_of(name: str, num_envs: int, **fields: Any) -> Any:
    spec = get_host().registry.get(ComponentKind.ENV, name)
    assert issubclass(spec.config, EnvConfig)
    return build_env(spec.config.model_validate({"type": name, **fields}), num_envs=num_envs, seed=0)


@pytest.mark.parametrize(
    ("name", "action_steps"),
    [("avoid_obstacle", 8), ("avoid_obstacle", None), ("ordered_subgoals", 4), ("mixture", None)],
)
def test_the_experts_rollout_gives_the_tasks_own_numbers(name: str, action_steps: int | None) -> None:
    task = get_task(name)
    env = env_of(name, EPISODES)
    engine = rollout(ExpertActor(task, seed=5, action_steps=action_steps), env, episodes=EPISODES, seed=3).metrics()
    own = task.evaluate(task.expert_policy(seed=5), num_episodes=EPISODES, seed=3, action_steps=action_steps)
    assert shared(engine, own)[0] == shared(engine, own)[1]
    assert len([k for k in engine if k.startswith("mode_freq/")]) == len(task.mode_names)
    assert engine["demo_mode_entropy"] == pytest.approx(
        float(-(task.mode_weights * np.log(task.mode_weights)).sum()) / np.log(len(task.mode_weights))
    )


def test_a_mode_averaging_policy_fails_in_the_env_as_in_the_task() -> None:
    task = get_task("avoid_obstacle")
    env = env_of("avoid_obstacle", EPISODES)
    engine = rollout(MidpointActor(task, action_steps=8), env, episodes=EPISODES, seed=1).metrics()

    def midpoint(obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.from_numpy(midpoint_chunk(task, obs[STATE_KEY][:, -1].double().numpy()))

    own = task.evaluate(midpoint, num_episodes=EPISODES, seed=1, action_steps=8)
    assert engine["success_rate"] == own["success_rate"] == 0.0
    assert engine["off_manifold_rate"] == own["off_manifold_rate"] == 1.0
    assert shared(engine, own)[0] == shared(engine, own)[1]
    assert engine["mean_episode_length"] < task.max_steps  # episodes end when the point hits the obstacle


def test_waves_of_environments_cover_every_episode() -> None:
    task = get_task("mixture")
    result = rollout(ExpertActor(task, seed=2), env_of("mixture", 7), episodes=20, seed=4)
    assert len(result.success) == len(result.modes) == 20  # type: ignore[arg-type]
    assert result.success.all()


def test_a_trained_policy_gives_the_tasks_numbers_through_act(tmp_path: Path, env_run: Path) -> None:
    """The runtime in the env (``act``) and in the task's loop (``predict_chunk``): same draws, same numbers."""
    task = get_task("avoid_obstacle")
    in_task = load_policy(env_run, seed=7)
    own = task.evaluate(
        lambda obs: in_task.predict_chunk(obs),
        num_episodes=EPISODES,
        seed=11,
        history=in_task.history,
        action_steps=in_task.action_steps,
    )
    in_env = load_policy(env_run, seed=7)
    section = (
        get_host().registry.get(ComponentKind.ENV, "avoid_obstacle").config.model_validate({"type": "avoid_obstacle"})
    )
    engine = evaluate_in_env(in_env, section, episodes=EPISODES, seed=11).metrics()
    assert shared(engine, own)[0] == shared(engine, own)[1]


def test_images_and_rendering(tmp_path: Path) -> None:
    env = build_env(
        get_host()
        .registry.get(ComponentKind.ENV, "avoid_obstacle")
        .config.model_validate({"type": "avoid_obstacle", "images": True, "image_size": 32, "render_size": 48}),
        num_envs=3,
        seed=0,
        render_mode="rgb_array",
    )
    observation, _ = env.reset(seed=0)
    assert observation["observation.image"].shape == (3, 32, 32, 3)
    assert observation["observation.image"].dtype == np.uint8
    assert env.observation_space.contains(observation)
    assert env.render().shape == (3, 48, 48, 3)
    assert env.mode_names == ("left", "right")
