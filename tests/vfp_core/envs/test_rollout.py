"""The engine's rollout over gymnasium's own vector envs (autoreset, ``is_success``, waves, step limits)."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import SyncVectorEnv

from vfp.envs import EnvError, check_env, episode_metrics, rollout
from vfp.policy.metadata import FeatureSpec


class Countdown(gymnasium.Env[dict[str, Any], Any]):
    """An episode of ``2 + seed % 3`` steps; success (``is_success``) when the last action was positive."""

    def __init__(self) -> None:
        self.observation_space = spaces.Dict({"observation.state": spaces.Box(-1, 1, (1,), np.float32)})
        self.action_space = spaces.Box(-1, 1, (1,), np.float32)
        self.left = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self.left = 2 + (seed or 0) % 3
        return {"observation.state": np.zeros(1, np.float32)}, {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self.left -= 1
        done = self.left == 0
        info = {"is_success": bool(done and action[0] > 0), "mode": int(action[0] > 0) if done else -1}
        return {"observation.state": np.full(1, self.left, np.float32)}, 1.0, done, False, info


class Constant:
    def __init__(self, value: float) -> None:
        self.value, self.resets = value, 0

    def reset(self) -> None:
        self.resets += 1

    def act(self, observation: dict[str, Any]) -> np.ndarray[Any, Any]:
        return np.full((len(observation["observation.state"]), 1), self.value, np.float32)


def vector(num_envs: int) -> SyncVectorEnv:
    return SyncVectorEnv([Countdown for _ in range(num_envs)])


def test_waves_count_each_environments_first_episode_only() -> None:
    actor = Constant(1.0)
    result = rollout(actor, vector(2), episodes=5, seed=0)
    assert result.lengths.tolist() == [2 + s % 3 for s in range(5)]  # waves reset with seeds 0, 2, 4 (+ env index)
    assert result.returns.tolist() == [2.0, 3.0, 4.0, 2.0, 3.0]
    assert result.success.all()  # read from gymnasium-robotics' `is_success`
    assert actor.resets == 3
    assert result.modes is None  # the env has no mode_names: no mode metrics
    assert set(result.metrics()) == {"success_rate", "mean_return", "mean_episode_length"}


def test_max_episode_steps_cuts_episodes() -> None:
    result = rollout(Constant(-1.0), vector(3), episodes=3, seed=0, max_episode_steps=3)
    assert result.lengths.tolist() == [2, 3, 3]
    assert not result.success.any()


def test_modes_reported_by_an_env_that_knows_them() -> None:
    env = vector(4)
    env.mode_names = ("down", "up")  # type: ignore[attr-defined]
    env.mode_weights = (0.5, 0.5)  # type: ignore[attr-defined]
    metrics = rollout(Constant(1.0), env, episodes=4, seed=0).metrics()
    assert metrics["mode_freq/up"] == 1.0
    assert metrics["mode_entropy"] == 0.0
    assert metrics["mode_tv"] == 0.5
    assert metrics["off_manifold_rate"] == 0.0  # no off_manifold info: the share of episodes with mode -1


def test_episode_metrics_mode_math() -> None:
    metrics = episode_metrics(
        success=np.array([True, True, True, False]),
        returns=np.zeros(4),
        lengths=np.array([1, 2, 3, 4]),
        modes=np.array([0, 1, 1, -1]),
        mode_names=["a", "b"],
        mode_weights=[0.5, 0.5],
    )
    assert metrics["mode_freq/a"] == pytest.approx(1 / 3)
    assert metrics["mode_tv"] == pytest.approx(1 / 6)
    assert metrics["off_manifold_rate"] == 0.25
    assert metrics["mode_entropy"] == pytest.approx(-(1 / 3 * np.log(1 / 3) + 2 / 3 * np.log(2 / 3)) / np.log(2))
    assert metrics["mean_episode_length"] == 2.5


def test_check_env_names_every_mismatch() -> None:
    features = {
        "observation.state": FeatureSpec((2,), "state"),
        "observation.images.front": FeatureSpec((3, 8, 8), "image"),
        "action": FeatureSpec((2,), "action"),
    }
    with pytest.raises(EnvError) as raised:
        check_env(vector(1), features, name="countdown")
    message = str(raised.value)
    assert "observation.state: the env gives shape (1,), the policy expects (2,)" in message
    assert "observation.images.front: missing from the observation space (it has: observation.state)" in message
    assert "action space has shape (1,), the policy's actions are (2,)" in message
