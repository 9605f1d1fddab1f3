"""The synthetic tasks as gymnasium vector envs (numpy, gymnasium; the extra ``vfp-il-components[envs]``).

Each env runs ``num_envs`` episodes of a task's own batched dynamics (:class:`PointEnv` for the
point-mass tasks) in lockstep, so a rollout is exactly the task's own closed-loop evaluation:
``reset(seed=S)`` draws the initial states of all environments from ``numpy.random.default_rng(S)``
as ``Task.evaluate(seed=S, num_episodes=num_envs)`` does. Observations are keyed by the dataset's
feature names (``observation.state`` float32, ``observation.image`` uint8 HWC with ``images``);
actions are the tasks' target positions. ``infos`` carries ``success``, ``off_manifold`` (the
episode left every demonstrated route) and ``mode`` (the mode a successful episode followed, -1
otherwise) at every step. Autoreset is off: an environment whose episode ended stays where it is
(its actions are ignored) until the next ``reset``.
"""

from __future__ import annotations

from typing import Any, Final

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from numpy.typing import NDArray

from vfp_il_components.envs.specs import (
    AvoidObstacleEnvConfig,
    MixtureEnvConfig,
    OrderedSubgoalsEnvConfig,
    SyntheticEnvConfig,
)
from vfp_il_components.tasks import get_task
from vfp_il_components.tasks.base import IMAGE_KEY, STATE_KEY, PointEnv, PointMassTask, Task
from vfp_il_components.tasks.mixture import MixtureTask

__all__ = ["MixtureVectorEnv", "PointTaskVectorEnv", "make_avoid_obstacle", "make_mixture", "make_ordered_subgoals"]

MIXTURE_EPISODE_STEPS: Final = 16
FloatArray = NDArray[np.float64]


class _TaskVectorEnv(VectorEnv):  # type: ignore[type-arg]
    """What the synthetic envs share: spaces, modes, seeding, rendering."""

    def __init__(self, task: Task, config: SyntheticEnvConfig, num_envs: int, seed: int, render_mode: str | None):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.DISABLED}
        self.task = task
        self.config = config
        self.num_envs = num_envs
        self.render_mode = render_mode
        observation: dict[str, spaces.Space[Any]] = {
            STATE_KEY: spaces.Box(-np.inf, np.inf, (task.state_dim,), np.float32)
        }
        if config.images:
            observation[IMAGE_KEY] = spaces.Box(0, 255, (config.image_size, config.image_size, 3), np.uint8)
        self.single_observation_space = spaces.Dict(observation)
        self.single_action_space = spaces.Box(-np.inf, np.inf, (task.action_dim,), np.float32)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.mode_names: tuple[str, ...] = tuple(task.mode_names)
        self.mode_weights: tuple[float, ...] = tuple(float(w) for w in task.mode_weights)
        self._rng = np.random.default_rng(seed)
        self._t = 0

    def _observe(self, state: FloatArray) -> dict[str, NDArray[Any]]:
        observation: dict[str, NDArray[Any]] = {STATE_KEY: state.astype(np.float32)}
        if self.config.images:
            observation[IMAGE_KEY] = self.task.render(state, self.config.image_size)
        return observation

    def _generator(self, seed: int | list[int] | None) -> np.random.Generator:
        if seed is None:
            return self._rng
        if isinstance(seed, list):
            seed = seed[0]
        self._rng = np.random.default_rng(seed)
        return self._rng

    def _state(self) -> FloatArray:
        raise NotImplementedError

    def render(self) -> NDArray[np.uint8] | None:  # type: ignore[override]  # one array for all envs
        """Frames ``(num_envs, render_size, render_size, 3)`` with ``render_mode="rgb_array"``."""
        if self.render_mode != "rgb_array":
            return None
        return self.task.render(self._state(), self.config.render_size)


class PointTaskVectorEnv(_TaskVectorEnv):
    """A point-mass task (``avoid_obstacle``, ``ordered_subgoals``): the point moves towards the commanded position."""

    def __init__(
        self, task: PointMassTask, config: SyntheticEnvConfig, num_envs: int, seed: int, render_mode: str | None
    ) -> None:
        super().__init__(task, config, num_envs, seed, render_mode)
        self.point_task = task
        self.max_episode_steps = config.max_episode_steps or task.max_steps
        self._env: PointEnv | None = None

    def _state(self) -> FloatArray:
        if self._env is None:
            raise gymnasium.error.ResetNeeded("call reset() before step() or render()")
        return self._env.observe()

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
        self._env = self.point_task.make_env(self._generator(seed), self.num_envs)
        self._t = 0
        return self._observe(self._env.observe()), {}

    def step(
        self, actions: NDArray[Any]
    ) -> tuple[dict[str, NDArray[Any]], NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_], dict[str, Any]]:
        env = self._env
        if env is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        targets = np.asarray(actions, dtype=np.float64).reshape(self.num_envs, self.task.action_dim)
        if not np.isfinite(targets).all():
            raise ValueError("actions must be finite numbers (got NaN or Inf)")
        ended = env.done | (self._t >= self.max_episode_steps)
        before = env.success.copy()
        env.step(np.where(ended[:, None], env.positions, targets))
        self._t += 1
        reward = (env.success & ~before).astype(np.float64)
        terminated = env.done.copy()
        truncated = ~terminated & (self._t >= self.max_episode_steps)
        infos = {"success": env.success.copy(), "off_manifold": env.off_manifold.copy(), "mode": env.modes()}
        return self._observe(env.observe()), reward, terminated, truncated, infos


class MixtureVectorEnv(_TaskVectorEnv):
    """``mixture``: a fixed context; an episode succeeds when all its actions lie near the same mode position."""

    def __init__(
        self, task: MixtureTask, config: SyntheticEnvConfig, num_envs: int, seed: int, render_mode: str | None
    ) -> None:
        super().__init__(task, config, num_envs, seed, render_mode)
        self.mixture = task
        self.max_episode_steps = config.max_episode_steps or MIXTURE_EPISODE_STEPS
        self._contexts: FloatArray | None = None
        self._within = np.ones((num_envs, task.num_modes), dtype=bool)

    def _state(self) -> FloatArray:
        if self._contexts is None:
            raise gymnasium.error.ResetNeeded("call reset() before step() or render()")
        return self._contexts

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
        self._contexts = self.mixture.sample_contexts(self._generator(seed), self.num_envs)
        self._within = np.ones((self.num_envs, self.mixture.num_modes), dtype=bool)
        self._t = 0
        return self._observe(self._contexts), {}

    def step(
        self, actions: NDArray[Any]
    ) -> tuple[dict[str, NDArray[Any]], NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_], dict[str, Any]]:
        contexts = self._state()
        targets = np.asarray(actions, dtype=np.float64).reshape(self.num_envs, self.task.action_dim)
        if self._t < self.max_episode_steps:
            distances = np.linalg.norm(targets[:, None, :] - self.mixture.mode_positions(contexts), axis=-1)
            self._within &= distances < self.mixture.tolerance
            self._t += 1
        on_a_mode = self._within.any(axis=1)
        modes = np.where(on_a_mode, self._within.argmax(axis=1), -1).astype(np.int64)
        finished = self._t >= self.max_episode_steps
        success = on_a_mode & finished
        terminated = np.full(self.num_envs, finished)
        reward = np.asarray(success, dtype=np.float64) if finished else np.zeros(self.num_envs)
        infos = {"success": success, "off_manifold": ~on_a_mode, "mode": modes}
        return self._observe(contexts), reward, terminated, np.zeros(self.num_envs, dtype=bool), infos


def _task(name: str, config: AvoidObstacleEnvConfig | OrderedSubgoalsEnvConfig | MixtureEnvConfig) -> Any:
    return get_task(name, **config.options.model_dump())


def make_avoid_obstacle(
    config: AvoidObstacleEnvConfig, *, num_envs: int, seed: int, render_mode: str | None = None
) -> PointTaskVectorEnv:
    """The ``avoid_obstacle`` env component."""
    return PointTaskVectorEnv(_task("avoid_obstacle", config), config, num_envs, seed, render_mode)


def make_ordered_subgoals(
    config: OrderedSubgoalsEnvConfig, *, num_envs: int, seed: int, render_mode: str | None = None
) -> PointTaskVectorEnv:
    """The ``ordered_subgoals`` env component."""
    return PointTaskVectorEnv(_task("ordered_subgoals", config), config, num_envs, seed, render_mode)


def make_mixture(
    config: MixtureEnvConfig, *, num_envs: int, seed: int, render_mode: str | None = None
) -> MixtureVectorEnv:
    """The ``mixture`` env component."""
    return MixtureVectorEnv(_task("mixture", config), config, num_envs, seed, render_mode)
