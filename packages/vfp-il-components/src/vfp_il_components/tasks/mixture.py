"""``mixture``: the observation (a context point) sets the positions of K action modes with unequal weights.

State ``[c_x, c_y]`` (constant over an episode); every action of an episode is the position of the mode
the expert picked, plus small Gaussian noise. Mode ``k`` sits at ``0.5 c + radius (cos θ_k, sin θ_k)``
with ``θ_k = 2πk/K + (π/2) c_x``. The weighted mean of the modes lies far from every mode, so a policy
that averages them is off the manifold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vfp_il_components.tasks.base import (
    IMAGE_KEY,
    STATE_KEY,
    Episode,
    FloatArray,
    ObservationHistory,
    Policy,
    RolloutOptions,
    RolloutResult,
    Task,
    call_policy,
    reset_policy,
)
from vfp_il_components.tasks.render import Disk, render_disks


@dataclass(eq=False)
class MixtureTask(Task):
    """A conditional mixture of ``num_modes`` action modes with weights proportional to K, K-1, ..., 1."""

    name = "mixture"
    state_dim = 2
    action_dim = 2

    num_modes: int = 3
    radius: float = 1.0
    noise: float = 0.02
    tolerance: float = 0.15
    episode_length: int = 24
    weights: list[float] | None = None
    """Relative mode weights (default: K, K-1, ..., 1)."""

    def __post_init__(self) -> None:
        if self.num_modes < 2:
            raise ValueError(f"num_modes must be at least 2, got {self.num_modes}")
        if self.weights is None:
            raw = np.arange(self.num_modes, 0, -1, dtype=np.float64)
        else:
            raw = np.asarray(self.weights, dtype=np.float64)
            if raw.shape != (self.num_modes,) or (raw <= 0).any():
                raise ValueError(f"weights must be {self.num_modes} positive numbers, got {self.weights}")
            self.weights = list(self.weights)
        separation = 2 * self.radius * np.sin(np.pi / self.num_modes)
        if self.tolerance >= separation / 2:
            raise ValueError(
                f"tolerance {self.tolerance} must be below half the mode separation ({separation / 2:.3f})"
            )
        self.mode_weights = raw / raw.sum()
        self.mode_names = tuple(f"mode_{k}" for k in range(self.num_modes))

    def mode_positions(self, contexts: FloatArray) -> FloatArray:
        """Positions (B, K, 2) of every mode for contexts (B, 2)."""
        k = np.arange(self.num_modes)
        theta = 2 * np.pi * k[None, :] / self.num_modes + 0.5 * np.pi * contexts[:, :1]
        offsets = self.radius * np.stack([np.cos(theta), np.sin(theta)], axis=-1)
        return 0.5 * contexts[:, None, :] + offsets

    def sample_contexts(self, rng: np.random.Generator, count: int) -> FloatArray:
        return rng.uniform(-1.0, 1.0, size=(count, 2))

    def expert_chunk(
        self, states: FloatArray, modes: NDArray[np.int64], horizon: int, rng: np.random.Generator | None = None
    ) -> FloatArray:
        rows = np.arange(len(states))
        centers = self.mode_positions(states[:, :2])[rows, modes]
        chunk = np.repeat(centers[:, None, :], horizon, axis=1)
        if rng is not None and self.noise > 0:
            chunk = chunk + rng.normal(0.0, self.noise, size=chunk.shape)
        return chunk

    def generate_demos(
        self, num_episodes: int, seed: int = 0, *, images: bool = False, image_size: int = 64
    ) -> list[Episode]:
        if num_episodes < 1:
            raise ValueError(f"num_episodes must be at least 1, got {num_episodes}")
        rng = np.random.default_rng(seed)
        contexts = self.sample_contexts(rng, num_episodes)
        modes = self.sample_modes(rng, num_episodes)
        actions = self.expert_chunk(contexts, modes, self.episode_length, rng).astype(np.float32)
        frames = self.render(contexts, image_size) if images else None
        episodes = []
        for i in range(num_episodes):
            observations: dict[str, NDArray[Any]] = {
                "state": np.repeat(contexts[i : i + 1], self.episode_length, axis=0).astype(np.float32)
            }
            if frames is not None:
                observations["image"] = np.repeat(frames[i : i + 1], self.episode_length, axis=0)
            episodes.append(Episode(observations, actions[i], int(modes[i])))
        return episodes

    def classify(self, contexts: FloatArray, chunks: FloatArray) -> NDArray[np.int64]:
        """The mode every action of each chunk lies within ``tolerance`` of, or -1 (off the manifold)."""
        positions = self.mode_positions(contexts)  # (B, K, 2)
        distances = np.linalg.norm(chunks[:, :, None, :] - positions[:, None, :, :], axis=-1)  # (B, H, K)
        within = (distances < self.tolerance).all(axis=1)  # (B, K)
        return np.where(within.any(axis=1), within.argmax(axis=1), -1).astype(np.int64)

    def run_episodes(self, policy: Policy, options: RolloutOptions) -> RolloutResult:
        """One query per episode at its first step; every executed action of the chunk must be on one mode."""
        num_episodes = options.num_episodes
        rng = np.random.default_rng(options.seed)
        contexts = self.sample_contexts(rng, num_episodes)
        reset_policy(policy)
        frame: dict[str, NDArray[Any]] = {STATE_KEY: contexts}
        if options.images:
            frame[IMAGE_KEY] = self.render(contexts, options.image_size)
        chunk = call_policy(policy, ObservationHistory(options.history, frame).batch(), num_episodes, self.action_dim)
        executed = chunk if options.action_steps is None else chunk[:, : options.action_steps]
        modes = self.classify(contexts, executed)
        expert = self.expert_chunk(contexts, self.sample_modes(rng, num_episodes), chunk.shape[1], rng)
        return RolloutResult(
            success=modes >= 0,
            off_manifold=modes < 0,
            modes=modes,
            initial_states=contexts,
            first_chunks=chunk,
            expert_chunks=expert,
        )

    def render(self, states: FloatArray, image_size: int = 64) -> NDArray[np.uint8]:
        return render_disks([Disk(states[:, :2], 0.12, (40, 60, 200))], len(states), image_size, extent=1.25)
