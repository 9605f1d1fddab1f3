"""Reference policies for the synthetic tasks: the expert, a mode-averaging policy, a single-mode one."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from vfp_il_components.tasks.base import STATE_KEY, Task

PolicyFactory = Callable[[Task], Callable[[dict[str, torch.Tensor]], torch.Tensor]]


def averaging(task: Task, horizon: int = 16) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """What a unimodal regressor learns: the weighted mean of the expert's chunks over the modes."""

    def policy(obs: dict[str, torch.Tensor]) -> torch.Tensor:
        states = obs[STATE_KEY][:, -1].double().numpy()
        n = len(states)
        chunks = [
            task.expert_chunk(states, np.full(n, k, dtype=np.int64), horizon) for k in range(len(task.mode_names))
        ]
        mean = sum(w * c for w, c in zip(task.mode_weights, chunks, strict=True))
        return torch.from_numpy(np.asarray(mean)).float()

    return policy


def single_mode(task: Task, mode: int = 0, horizon: int = 16) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """A policy that always commits to the same mode."""

    def policy(obs: dict[str, torch.Tensor]) -> torch.Tensor:
        states = obs[STATE_KEY][:, -1].double().numpy()
        return torch.from_numpy(task.expert_chunk(states, np.full(len(states), mode, dtype=np.int64), horizon)).float()

    return policy


@pytest.fixture
def averaging_policy() -> PolicyFactory:
    return averaging


@pytest.fixture
def single_mode_policy() -> PolicyFactory:
    return single_mode
