"""The ``Task`` API shared by the synthetic tasks, and the closed-loop machinery of the point-mass ones.

A task is a dataclass of its constructor options (``options()`` returns them, ``get_task(name,
**options)`` rebuilds it). A policy is a callable ``policy(obs) -> chunk``: ``obs`` holds unnormalized
observations laid out as training batches are (``observation.state`` (B, T, D), ``observation.state_is_pad``
(B, T) and, with images, ``observation.image`` (B, T, 3, H, W) float in [0, 1]); it returns an
unnormalized action chunk (B, H, A). A policy with a ``reset()`` method has it called before every
rollout. How a closed-loop evaluation runs (episodes, seed, history, images, re-planning) is one
:class:`RolloutOptions`.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from numpy.typing import NDArray

from vfp_il_components.tasks.metrics import sinkhorn_distance, summarize

__all__ = [
    "IMAGE_KEY",
    "STATE_KEY",
    "Episode",
    "ExpertPolicy",
    "ObservationHistory",
    "PointEnv",
    "PointMassTask",
    "Policy",
    "RolloutOptions",
    "RolloutResult",
    "Task",
]

STATE_KEY = "observation.state"
IMAGE_KEY = "observation.image"
Policy = Callable[[dict[str, torch.Tensor]], torch.Tensor]
FloatArray = NDArray[np.float64]


@dataclass
class Episode:
    """One demonstration: per-step observations by key (``state`` (T, D) float32, optionally ``image``
    (T, H, W, 3) uint8), actions (T, A) float32, and the ground-truth mode the expert followed."""

    observations: dict[str, NDArray[Any]]
    actions: NDArray[np.float32]
    mode: int

    def __len__(self) -> int:
        return int(self.actions.shape[0])


@dataclass(frozen=True)
class RolloutOptions:
    """How a closed-loop rollout runs: ``Task.rollout(policy, options)`` or ``Task.rollout(policy, **fields)``."""

    num_episodes: int = 100
    """Episodes, run in parallel."""
    seed: int = 0
    """Seed of the initial states (and of the expert's modes in the reference chunks)."""
    history: int = 1
    """Observation steps the policy sees."""
    images: bool = False
    """Also render image observations (``observation.image``)."""
    image_size: int = 64
    """Side of the rendered images in pixels."""
    action_steps: int | None = None
    """Actions executed from each chunk before the policy is queried again (None: the whole chunk)."""


@dataclass
class RolloutResult:
    """Per-episode outcome of a closed-loop evaluation (N episodes run in parallel)."""

    success: NDArray[np.bool_]
    off_manifold: NDArray[np.bool_]
    """True where the episode left every demonstrated route (what an averaging policy does)."""
    modes: NDArray[np.int64]
    """Index into ``Task.mode_names`` of the mode each successful episode followed, -1 otherwise."""
    initial_states: FloatArray
    first_chunks: FloatArray
    """The policy's first action chunk of each episode (N, H, A)."""
    expert_chunks: FloatArray
    """Expert chunks at the same initial states, modes drawn with the true weights (N, H, A)."""


class Task(ABC):
    """A synthetic task with known multi-modal ground truth."""

    name: ClassVar[str]
    fps: ClassVar[int] = 10
    state_dim: int
    action_dim: int
    mode_names: tuple[str, ...]
    mode_weights: FloatArray
    """True probability of each mode in the demonstrations."""

    def options(self) -> dict[str, Any]:
        """Constructor options; ``get_task(task.name, **task.options())`` rebuilds the same task.

        A task is a dataclass whose fields are its options, so they are declared once.
        """
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}  # type: ignore[arg-type]

    @abstractmethod
    def generate_demos(
        self, num_episodes: int, seed: int = 0, *, images: bool = False, image_size: int = 64
    ) -> list[Episode]:
        """Demonstrations of the scripted expert, each following one mode drawn with ``mode_weights``."""

    @abstractmethod
    def expert_chunk(
        self, states: FloatArray, modes: NDArray[np.int64], horizon: int, rng: np.random.Generator | None = None
    ) -> FloatArray:
        """The expert's action chunk (B, horizon, A) from states (B, D) when following ``modes`` (B,)."""

    @abstractmethod
    def run_episodes(self, policy: Policy, options: RolloutOptions) -> RolloutResult:
        """Run ``policy`` on ``options.num_episodes`` episodes in parallel and classify each by mode."""

    @abstractmethod
    def render(self, states: FloatArray, image_size: int = 64) -> NDArray[np.uint8]:
        """Images (N, H, W, 3) uint8 of the scenes described by ``states`` (N, D)."""

    def rollout(self, policy: Policy, options: RolloutOptions | None = None, **fields: Any) -> RolloutResult:
        """Run ``policy`` in closed loop and classify each episode by mode.

        The rollout follows ``options`` (default: :class:`RolloutOptions`'s defaults) with any of its
        ``fields`` given as keywords replaced: ``task.rollout(policy, num_episodes=50, seed=0)``.
        """
        return self.run_episodes(policy, dataclasses.replace(options or RolloutOptions(), **fields))

    def evaluate(self, policy: Policy, options: RolloutOptions | None = None, **fields: Any) -> dict[str, float]:
        """Metrics of ``policy`` (options as in :meth:`rollout`): ``success_rate``, ``off_manifold_rate``,
        ``mode_entropy`` (normalized), ``mode_tv`` (total variation from the true mode weights),
        ``mode_freq/<mode>`` and ``sinkhorn`` (between (initial state, first chunk) pairs of the policy
        and of the expert)."""
        return self.summarize(self.rollout(policy, options, **fields))

    def summarize(self, result: RolloutResult) -> dict[str, float]:
        """Turn a rollout's per-episode outcome into the metric dictionary of ``evaluate``."""
        n, horizon = result.first_chunks.shape[:2]
        # chunks scaled by 1/sqrt(H): the transport cost is the per-step mean squared distance
        scale = 1.0 / np.sqrt(horizon)
        sampled = np.concatenate([result.initial_states, scale * result.first_chunks.reshape(n, -1)], axis=1)
        true = np.concatenate([result.initial_states, scale * result.expert_chunks.reshape(n, -1)], axis=1)
        return summarize(
            success=result.success,
            off_manifold=result.off_manifold,
            modes=result.modes,
            mode_names=self.mode_names,
            mode_weights=self.mode_weights,
            sinkhorn=sinkhorn_distance(sampled, true),
        )

    def sample_modes(self, rng: np.random.Generator, count: int) -> NDArray[np.int64]:
        """Modes drawn with the true weights."""
        return rng.choice(len(self.mode_names), size=count, p=self.mode_weights).astype(np.int64)

    def expert_policy(self, seed: int = 0, horizon: int = 16) -> ExpertPolicy:
        """The scripted expert as a policy: it draws one mode per episode and keeps it."""
        return ExpertPolicy(self, seed=seed, horizon=horizon)


class ExpertPolicy:
    """A task's scripted expert behind the policy interface (modes drawn on the first call after reset)."""

    def __init__(self, task: Task, seed: int = 0, horizon: int = 16) -> None:
        self.task = task
        self.horizon = horizon
        self._rng = np.random.default_rng(seed)
        self._modes: NDArray[np.int64] | None = None

    def reset(self) -> None:
        self._modes = None

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        states = obs[STATE_KEY][:, -1].double().numpy()
        if self._modes is None or len(self._modes) != len(states):
            self._modes = self.task.sample_modes(self._rng, len(states))
        chunk = self.task.expert_chunk(states, self._modes, self.horizon, self._rng)
        return torch.from_numpy(chunk).float()


class ObservationHistory:
    """The last ``history`` observations of every parallel episode, laid out as training batches are."""

    def __init__(self, history: int, first: dict[str, NDArray[Any]]) -> None:
        if history < 1:
            raise ValueError(f"history must be at least 1, got {history}")
        self.history = history
        self._frames: deque[dict[str, torch.Tensor]] = deque(maxlen=history)
        converted = self._convert(first)
        for _ in range(history):
            self._frames.append(converted)
        self._seen = 1

    @staticmethod
    def _convert(frame: dict[str, NDArray[Any]]) -> dict[str, torch.Tensor]:
        converted = {}
        for key, value in frame.items():
            tensor = torch.from_numpy(np.ascontiguousarray(value))
            is_image = tensor.dtype == torch.uint8  # (B, H, W, C) uint8 -> (B, C, H, W) float in [0, 1]
            converted[key] = tensor.permute(0, 3, 1, 2).contiguous().float().div_(255.0) if is_image else tensor.float()
        return converted

    def push(self, frame: dict[str, NDArray[Any]]) -> None:
        self._frames.append(self._convert(frame))
        self._seen += 1

    def batch(self) -> dict[str, torch.Tensor]:
        batch: dict[str, torch.Tensor] = {}
        num_pad = max(self.history - self._seen, 0)
        for key in self._frames[0]:
            stacked = torch.stack([frame[key] for frame in self._frames], dim=1)
            batch[key] = stacked
            pad = torch.zeros(stacked.shape[:2], dtype=torch.bool)
            pad[:, :num_pad] = True
            batch[f"{key}_is_pad"] = pad
        return batch


def reset_policy(policy: Policy) -> None:
    """Call the policy's ``reset()`` before a rollout, if it has one."""
    reset = getattr(policy, "reset", None)
    if callable(reset):
        reset()


def call_policy(policy: Policy, obs: dict[str, torch.Tensor], num_episodes: int, action_dim: int) -> FloatArray:
    """Query ``policy`` and check that it returned an action chunk (B, H, A)."""
    with torch.no_grad():
        chunk = policy(obs)
    if not isinstance(chunk, torch.Tensor):
        raise TypeError(f"a policy must return a torch.Tensor action chunk, got {type(chunk).__name__}")
    if chunk.ndim != 3 or chunk.shape[0] != num_episodes or chunk.shape[2] != action_dim:
        raise ValueError(
            f"a policy must return an action chunk of shape ({num_episodes}, horizon, {action_dim}), "
            f"got {tuple(chunk.shape)}"
        )
    array = chunk.detach().cpu().double().numpy()
    if not np.isfinite(array).all():
        raise ValueError("the policy returned NaN or Inf actions")
    return array


class PointEnv(ABC):
    """Parallel episodes of a point that moves towards commanded positions at a bounded speed."""

    def __init__(self, positions: FloatArray, max_step: float) -> None:
        self.positions = positions
        self.max_step = max_step
        n = len(positions)
        self.success = np.zeros(n, dtype=bool)
        self.failed = np.zeros(n, dtype=bool)
        self.off_manifold = np.zeros(n, dtype=bool)

    @property
    def done(self) -> NDArray[np.bool_]:
        return self.success | self.failed

    @abstractmethod
    def observe(self) -> FloatArray:
        """The state vector (B, D) of every episode."""

    @abstractmethod
    def step(self, targets: FloatArray) -> None:
        """Move every episode that has not failed towards ``targets`` (B, 2) and update its events."""

    @abstractmethod
    def modes(self) -> NDArray[np.int64]:
        """The mode each successful episode followed, -1 for the others."""


class PointMassTask(Task):
    """A task whose world is a point moving in the plane; actions are target positions (chunks of them)."""

    action_dim = 2
    max_steps: int
    hold_steps: int = 5
    """Demonstrations continue this many steps after success (the point settles on the goal)."""

    @abstractmethod
    def make_env(self, rng: np.random.Generator, num_episodes: int, *, demonstration: bool = False) -> PointEnv:
        """Fresh parallel episodes with randomized initial conditions (``demonstration``: for the expert's demos)."""

    def _frame(self, env: PointEnv, options: RolloutOptions) -> dict[str, NDArray[Any]]:
        state = env.observe()
        frame: dict[str, NDArray[Any]] = {STATE_KEY: state}
        if options.images:
            frame[IMAGE_KEY] = self.render(state, options.image_size)
        return frame

    def run_episodes(self, policy: Policy, options: RolloutOptions) -> RolloutResult:
        num_episodes = options.num_episodes
        rng = np.random.default_rng(options.seed)
        env = self.make_env(rng, num_episodes)
        reset_policy(policy)
        observations = ObservationHistory(options.history, self._frame(env, options))
        initial_states = env.observe().copy()
        first_chunk: FloatArray | None = None
        t = 0
        while t < self.max_steps and not env.done.all():
            chunk = call_policy(policy, observations.batch(), num_episodes, self.action_dim)
            if first_chunk is None:
                first_chunk = chunk
            steps = chunk.shape[1] if options.action_steps is None else min(options.action_steps, chunk.shape[1])
            for j in range(steps):
                env.step(chunk[:, j])
                t += 1
                if t >= self.max_steps or env.done.all():
                    break
                observations.push(self._frame(env, options))
        assert first_chunk is not None
        expert = self.expert_chunk(initial_states, self.sample_modes(rng, num_episodes), first_chunk.shape[1], rng)
        return RolloutResult(
            success=env.success.copy(),
            off_manifold=env.off_manifold.copy(),
            modes=env.modes(),
            initial_states=initial_states,
            first_chunks=first_chunk,
            expert_chunks=expert,
        )

    def generate_demos(
        self, num_episodes: int, seed: int = 0, *, images: bool = False, image_size: int = 64
    ) -> list[Episode]:
        if num_episodes < 1:
            raise ValueError(f"num_episodes must be at least 1, got {num_episodes}")
        rng = np.random.default_rng(seed)
        env = self.make_env(rng, num_episodes, demonstration=True)
        modes = self.sample_modes(rng, num_episodes)
        states: list[FloatArray] = []
        actions: list[FloatArray] = []
        frames: list[NDArray[np.uint8]] = []
        finished_at = np.full(num_episodes, -1)
        for t in range(self.max_steps + self.hold_steps):
            state = env.observe()
            action = self.expert_chunk(state, modes, 1, rng)[:, 0]
            states.append(state.copy())
            actions.append(action)
            if images:
                frames.append(self.render(state, image_size))
            env.step(action)
            finished_at[(finished_at < 0) & env.done] = t + 1
            if (finished_at >= 0).all() and t + 1 >= finished_at.max() + self.hold_steps:
                break
        if env.failed.any() or not env.success.all():
            bad = int(np.flatnonzero(~env.success)[0])
            raise RuntimeError(f"{self.name}: the scripted expert failed in episode {bad} (seed {seed})")
        followed = env.modes()
        if not np.array_equal(followed, modes):
            raise RuntimeError(f"{self.name}: the scripted expert did not follow its modes (seed {seed})")
        state_array = np.stack(states, axis=1).astype(np.float32)
        action_array = np.stack(actions, axis=1).astype(np.float32)
        image_array = np.stack(frames, axis=1) if images else None
        episodes = []
        for i in range(num_episodes):
            length = int(finished_at[i]) + self.hold_steps
            observations: dict[str, NDArray[Any]] = {"state": state_array[i, :length]}
            if image_array is not None:
                observations["image"] = image_array[i, :length]
            episodes.append(Episode(observations, action_array[i, :length], int(modes[i])))
        return episodes
