"""Multi-modal MetaWorld demonstrations without downloads: MetaWorld's scripted experts, sent along routes.

For a task of :data:`~vfp_il_components.envs.metaworld_env.ROUTES`, each demonstration draws a mode
(an approach route, with ``mode_weights``), drives the end effector through that route's waypoints
with a proportional controller (the grip as MetaWorld's expert sets it), then hands over to the task's
scripted policy (``metaworld.policies.ENV_POLICY_MAP[task]``). Gaussian noise (``noise``, in action
units) is added to the hand's displacement at every step. Only successful episodes are kept; the
recorded action is the one executed (noisy, clipped to [-1, 1]).

``route="midpoint"`` runs the expert through the average of the routes' waypoints — what a policy
that averages the modes does. :func:`expert_success` measures it: the midpoint lies inside the wall
or the drawer, so the hand never reaches it and the episode fails.

``vfp data demo metaworld/<task> OUT`` and ``data.generate: {task: metaworld/<task>}`` write these
demonstrations (:func:`write_metaworld_demos`).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray

from vfp_il_components.envs.metaworld import DEFAULT_EPISODE_STEPS, MAX_EPISODE_STEPS, METAWORLD_TASKS
from vfp_il_components.envs.metaworld_env import FPS, ROUTES, MetaWorldStateEnv, import_metaworld
from vfp_il_components.tasks.base import Episode

__all__ = [
    "PREFIX",
    "MetaWorldDemos",
    "RouteExpert",
    "demo_reset_seed",
    "expert_success",
    "is_metaworld_task",
    "write_metaworld_demos",
]

PREFIX: Final = "metaworld/"
"""Demo-source names are ``metaworld/<task>`` (``vfp data demo metaworld/push-wall-v3 OUT``)."""
WAYPOINT_TOLERANCE: Final = 0.01
"""Distance (m) at which the expert counts a waypoint as reached and moves on to the next one."""
GAIN: Final = 10.0
"""Proportional gain towards a waypoint (MetaWorld's experts use 10-25)."""
DEMO_STREAM: Final = 0x4D57  # "MW": keeps demo reset seeds apart from other uses of the same seed
FloatArray = NDArray[np.float64]


def demo_reset_seed(seed: int, index: int) -> int:
    """The reset seed of demonstration attempt ``index`` of a generator seeded with ``seed``: a 32-bit hash,
    so demonstrations do not start from the scenes of an evaluation's small seeds (0, 1, 2, ...)."""
    return int(np.random.SeedSequence([DEMO_STREAM, seed, index]).generate_state(1)[0])


def is_metaworld_task(name: str) -> bool:
    """Whether ``name`` names a MetaWorld demo source (``metaworld/<task>``)."""
    return name.startswith(PREFIX)


def _task_of(name: str) -> str:
    task = name.removeprefix(PREFIX)
    if task not in ROUTES:
        raise ValueError(
            f"no multi-modal MetaWorld demonstrations for {task!r}; available: "
            + ", ".join(PREFIX + t for t in METAWORLD_TASKS)
        )
    return task


class RouteExpert:
    """MetaWorld's scripted expert preceded by a route through waypoints (K, 3)."""

    def __init__(self, task: str, waypoints: FloatArray) -> None:
        import_metaworld()
        from metaworld.policies import ENV_POLICY_MAP

        policy_class: Any = ENV_POLICY_MAP[task]  # a concrete subclass of the abstract map value type
        self.policy = policy_class()
        self.waypoints = np.asarray(waypoints, dtype=np.float64)
        self.next_waypoint = 0

    def __call__(self, obs: FloatArray) -> NDArray[np.float32]:
        with warnings.catch_warnings():  # MetaWorld's experts warn whenever they rely on the env's clipping
            warnings.filterwarnings("ignore", message="Constant", category=UserWarning)
            action = np.asarray(self.policy.get_action(obs), dtype=np.float32).copy()
        hand = obs[:3]
        while self.next_waypoint < len(self.waypoints):
            error = self.waypoints[self.next_waypoint] - hand
            if np.linalg.norm(error) >= WAYPOINT_TOLERANCE:
                action[:3] = np.clip(GAIN * error, -1.0, 1.0)
                break
            self.next_waypoint += 1
        return action


@dataclass
class MetaWorldDemos:
    """The demonstration source ``metaworld/<task>``: its options, and :meth:`generate_demos`."""

    task: str
    noise: float = 0.1
    """Standard deviation of the Gaussian noise on the hand's displacement (action units, range [-1, 1])."""
    mode_weights: list[float] | None = None
    """Probability of each route (null: uniform)."""
    max_episode_steps: int = DEFAULT_EPISODE_STEPS
    max_attempts: int = 4
    """Episodes tried per kept demonstration at most (failed ones are dropped)."""
    mode_names: tuple[str, ...] = field(init=False)
    fps: int = field(init=False, default=FPS)

    def __post_init__(self) -> None:
        self.task = _task_of(PREFIX + self.task.removeprefix(PREFIX))
        self.mode_names = ROUTES[self.task].mode_names
        weights = np.asarray(self.mode_weights or [1.0] * len(self.mode_names), dtype=np.float64)
        if weights.shape != (len(self.mode_names),) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"mode_weights: {len(self.mode_names)} non-negative weights expected")
        self.weights = weights / weights.sum()
        if self.noise < 0:
            raise ValueError("noise must be >= 0")
        if not 1 <= self.max_episode_steps <= MAX_EPISODE_STEPS:
            raise ValueError(f"max_episode_steps must be in 1..{MAX_EPISODE_STEPS} (MetaWorld's own episode limit)")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")

    @property
    def name(self) -> str:
        return PREFIX + self.task

    def options(self) -> dict[str, Any]:
        return {
            "noise": self.noise,
            "mode_weights": self.mode_weights,
            "max_episode_steps": self.max_episode_steps,
            "max_attempts": self.max_attempts,
        }

    def run_episode(
        self, env: MetaWorldStateEnv, seed: int, route: int | Literal["midpoint"], rng: np.random.Generator
    ) -> tuple[Episode, bool, int]:
        """One episode from ``reset(seed=seed)`` along ``route``: (episode, success, mode the env classified)."""
        obs, _ = env.reset(seed=seed)
        raw = env.last_raw_obs
        waypoints = ROUTES[self.task].waypoints(env.sim, raw)
        expert = RouteExpert(self.task, waypoints.mean(axis=0) if route == "midpoint" else waypoints[route])
        states, actions = [], []
        success, info = False, {"mode": -1}
        for _ in range(self.max_episode_steps):
            action = expert(raw)
            action[:3] += rng.normal(0.0, self.noise, 3).astype(np.float32)
            action = np.clip(action, -1.0, 1.0)
            states.append(obs["observation.state"])
            actions.append(action)
            obs, _, terminated, truncated, info = env.step(action)
            raw = env.last_raw_obs
            if terminated or truncated:
                success = bool(info["success"])
                break
        episode = Episode(
            observations={"state": np.stack(states).astype(np.float32)},
            actions=np.stack(actions).astype(np.float32),
            mode=-1 if route == "midpoint" else int(route),
        )
        return episode, success, int(info["mode"])

    def generate_demos(
        self, num_episodes: int, seed: int = 0, *, images: bool = False, image_size: int = 64
    ) -> list[Episode]:
        """``num_episodes`` successful demonstrations; attempt i resets with ``demo_reset_seed(seed, i)``."""
        if images:
            raise ValueError("MetaWorld demonstrations are state-only (rendering needs OSMesa/EGL and is slow)")
        rng = np.random.default_rng(seed)
        env = MetaWorldStateEnv(self.task, max_episode_steps=self.max_episode_steps, seed=seed)
        episodes: list[Episode] = []
        attempts = 0
        try:
            while len(episodes) < num_episodes:
                if attempts >= self.max_attempts * num_episodes:
                    raise RuntimeError(
                        f"{self.name}: only {len(episodes)} of {attempts} episodes succeeded "
                        f"(wanted {num_episodes}); lower the noise ({self.noise})"
                    )
                mode = int(rng.choice(len(self.mode_names), p=self.weights))
                episode, success, _ = self.run_episode(env, demo_reset_seed(seed, attempts), mode, rng)
                attempts += 1
                if success:
                    episodes.append(episode)
        finally:
            env.close()
        return episodes


def expert_success(
    task: str, route: int | Literal["midpoint"], episodes: int, seed: int = 0, noise: float = 0.1
) -> dict[str, float]:
    """Success rate of the scripted expert along ``route`` (a mode index, or the midpoint of the routes),
    the share of episodes the env classified into that mode, mean length and env steps per second."""
    import time

    source = MetaWorldDemos(task, noise=noise)
    rng = np.random.default_rng(seed)
    env = MetaWorldStateEnv(source.task, max_episode_steps=source.max_episode_steps, seed=seed)
    successes, classified, steps = 0, 0, 0
    start = time.perf_counter()
    try:
        for index in range(episodes):
            episode, success, mode = source.run_episode(env, demo_reset_seed(seed, index), route, rng)
            successes += success
            classified += route != "midpoint" and mode == route
            steps += len(episode)
    finally:
        env.close()
    seconds = time.perf_counter() - start
    return {
        "success_rate": successes / episodes,
        "mode_match_rate": classified / episodes,
        "mean_length": steps / episodes,
        "steps_per_second": steps / seconds,
    }


def write_metaworld_demos(
    name: str,
    out: Path,
    *,
    episodes: int,
    seed: int = 0,
    data_format: Literal["hdf5", "lerobot"] = "hdf5",
    val_ratio: float = 0.1,
    repo_id: str | None = None,
    options: dict[str, Any] | None = None,
    images: bool = False,
) -> list[Episode]:
    """Generate ``episodes`` demonstrations of ``metaworld/<task>`` and write them to ``out``.

    The file records where they came from: HDF5 attributes ``vfp_env`` (the ``evaluation.env`` section
    to roll out in, JSON), ``vfp_demo_source``/``vfp_demo_options``, ``vfp_fps`` and each demo's
    ``vfp_mode``/``vfp_mode_name``; a LeRobot dataset the same keys in ``meta/info.json`` plus
    ``vfp_episode_modes``. (No ``vfp_task``: that names the synthetic tasks a trainer evaluates on itself.)
    """
    source = MetaWorldDemos(_task_of(name), **(options or {}))
    demos = source.generate_demos(episodes, seed, images=images)
    env_section: dict[str, Any] = {
        "type": "metaworld",
        "task": source.task,
        "max_episode_steps": source.max_episode_steps,
    }
    if source.mode_weights is not None:
        env_section["mode_weights"] = source.mode_weights
    provenance = {"vfp_env": env_section, "vfp_demo_source": source.name, "vfp_demo_options": source.options()}
    out = Path(out).expanduser()
    if data_format == "hdf5":
        import h5py

        from vfp_il_components.data.writers import write_hdf5_dataset

        partial = out.with_name(f".{out.name}.{os.getpid()}.metaworld")
        try:
            write_hdf5_dataset(demos, partial, val_ratio=val_ratio, seed=seed)
            with h5py.File(partial, "a") as file:
                file.attrs.update(
                    {key: value if isinstance(value, str) else json.dumps(value) for key, value in provenance.items()}
                )
                file.attrs["vfp_fps"] = source.fps
                data = file["data"]
                data.attrs["env_args"] = json.dumps({"env_name": source.task, "type": "metaworld", "env_kwargs": {}})
                for index, demo in enumerate(demos):
                    data[f"demo_{index}"].attrs["vfp_mode_name"] = source.mode_names[demo.mode]
            os.replace(partial, out)
        finally:
            partial.unlink(missing_ok=True)
    else:
        from vfp_il_components.data.lerobot_writer import write_lerobot_dataset

        write_lerobot_dataset(demos, out, repo_id=repo_id or f"vfp/{source.task}", fps=source.fps)
        info_path = out / "meta" / "info.json"
        info = json.loads(info_path.read_text())
        info.update(provenance)
        info["vfp_episode_modes"] = [source.mode_names[demo.mode] for demo in demos]
        info_path.write_text(json.dumps(info, indent=4))
    return demos
