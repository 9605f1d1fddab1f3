"""Helpers for the env tests: the synthetic tasks' scripted expert behind the ``reset``/``act`` interface.

(A uniquely named module: ``from conftest import ...`` would be ambiguous across test folders.)
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from textwrap import dedent
from typing import Any

import numpy as np
import torch

from vfp.config import load_experiment
from vfp.engine import TrainOptions, train
from vfp_il_components.tasks.base import STATE_KEY, Task


class ExpertActor:
    """A task's scripted expert played as ``Policy.act`` plays a policy: one chunk, ``action_steps`` of it, re-plan.

    It calls the expert exactly as ``Task.evaluate`` does (same random draws in the same order), so the
    engine's rollout of it must give the task's own numbers.
    """

    def __init__(self, task: Task, *, seed: int = 0, horizon: int = 16, action_steps: int | None = None) -> None:
        self.expert = task.expert_policy(seed=seed, horizon=horizon)
        self.action_steps = action_steps or horizon
        self.queue: deque[np.ndarray[Any, Any]] = deque()

    def reset(self) -> None:
        self.expert.reset()
        self.queue.clear()

    def act(self, observation: Mapping[str, Any]) -> np.ndarray[Any, Any]:
        if not self.queue:
            state = torch.from_numpy(np.asarray(observation[STATE_KEY], dtype=np.float32))[:, None]
            chunk = self.expert({STATE_KEY: state}).double().numpy()
            self.queue.extend(chunk[:, i] for i in range(self.action_steps))
        return self.queue.popleft()


class MidpointActor(ExpertActor):
    """The average of the expert's left and right chunks: what a mode-averaging policy does (it collides)."""

    def act(self, observation: Mapping[str, Any]) -> np.ndarray[Any, Any]:
        if not self.queue:
            chunk = midpoint_chunk(self.expert.task, np.asarray(observation[STATE_KEY], dtype=np.float64))
            self.queue.extend(chunk[:, i] for i in range(self.action_steps))
        return self.queue.popleft()


def midpoint_chunk(task: Task, states: np.ndarray[Any, Any], horizon: int = 16) -> np.ndarray[Any, Any]:
    n = len(states)
    left = task.expert_chunk(states, np.zeros(n, dtype=np.int64), horizon)
    right = task.expert_chunk(states, np.ones(n, dtype=np.int64), horizon)
    return 0.5 * (left + right)


STEPS = 20


def train_with_env(run_dir: Path, data: Path, *overrides: str, name: str = "quickstart") -> Path:
    """Train ``name`` for 20 steps on 12 generated demos, evaluated every 10 steps on 8 episodes (in this process)."""
    config = load_experiment(
        name,
        [
            f"training.max_steps={STEPS}",
            "checkpointing.every=10",
            "checkpointing.keep_last=1",
            "evaluation.every=10",
            "evaluation.episodes=8",
            f"data.path={data}",
            "data.generate.episodes=12",
            "data.batch_size=32",
            "logging.callbacks=[{type: jsonl}]",
            *overrides,
        ],
    ).config
    result = train(config, TrainOptions(run_dir=run_dir, progress="none"))
    assert result.status == "completed", result.message
    return run_dir


def val_records(run_dir: Path) -> dict[int, dict[str, float]]:
    """The evaluation records of ``metrics.jsonl`` by step."""
    records = {}
    for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("split") == "val":
            records[int(record["step"])] = {k: v for k, v in record.items() if k not in ("step", "split")}
    return records


def install_plugin(folder: Path, distribution: str, module: str, source: str) -> None:
    """Write an installed-looking distribution: ``module.py`` and a dist-info with a ``vfp`` entry point."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(dedent(source), encoding="utf-8")
    info = folder / f"{distribution.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1.0\n\n")
    (info / "entry_points.txt").write_text(f"[vfp]\n{module.removeprefix('vfp_')} = {module}\n")


LINE_WORLD = '''\
"""An outside env plugin: a point flies straight from (0, -1) to a goal at (0, 1); no trainer knows it."""

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

import vfp
from vfp import ComponentKind, ComponentSpec, EnvConfig

VFP_CONTRACT = "1.1"
STEPS_TAKEN = []


class LineWorldConfig(EnvConfig):
    state_dim: int = 4
    raise_at_step: int | None = None


class LineWorld(VectorEnv):
    def __init__(self, config, num_envs, seed, render_mode):
        self.metadata = {"autoreset_mode": AutoresetMode.DISABLED}
        self.config, self.num_envs, self.render_mode = config, num_envs, render_mode
        self.limit = config.max_episode_steps or 40
        box = spaces.Box(-np.inf, np.inf, (config.state_dim,), np.float32)
        self.single_observation_space = spaces.Dict({"observation.state": box})
        self.single_action_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

    def _obs(self):
        goal = np.tile([0.0, 1.0], (self.num_envs, 1))
        state = np.concatenate([self.position, goal], axis=1)[:, : self.config.state_dim]
        return {"observation.state": state.astype(np.float32)}

    def reset(self, *, seed=None, options=None):
        self.position = np.tile([0.0, -1.0], (self.num_envs, 1)) + np.random.default_rng(seed).uniform(
            -0.05, 0.05, (self.num_envs, 2)
        )
        self.t = 0
        return self._obs(), {}

    def step(self, actions):
        STEPS_TAKEN.append(self.t)
        if self.config.raise_at_step is not None and self.t == self.config.raise_at_step:
            raise RuntimeError("the simulator exploded")
        move = np.asarray(actions, dtype=np.float64) - self.position
        norm = np.maximum(np.linalg.norm(move, axis=1, keepdims=True), 1e-9)
        self.position = self.position + move * np.minimum(1.0, 0.1 / norm)
        self.t += 1
        success = np.linalg.norm(self.position - [0.0, 1.0], axis=1) < 0.1
        truncated = np.full(self.num_envs, self.t >= self.limit) & ~success
        return self._obs(), success.astype(float), success, truncated, {"success": success}


def make_line_world(config, *, num_envs, seed, render_mode=None):
    return LineWorld(config, num_envs, seed, render_mode)


@vfp.hookimpl
def vfp_register_components():
    return [ComponentSpec(ComponentKind.ENV, "line_world", LineWorldConfig, "vfp_lineworld:make_line_world")]
'''
