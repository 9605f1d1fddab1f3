"""The ``metaworld`` env: MetaWorld 3 tasks as gymnasium envs keyed by dataset features, with route modes.

:class:`MetaWorldStateEnv` wraps one MetaWorld task (MuJoCo through ``Meta-World/MT1``). Its
observation is ``{"observation.state": 39-dim float32}`` (hand position, gripper, two objects, the
previous frame, the goal), its action MetaWorld's own ``Box(-1, 1, (4,))`` (hand displacement, grip).
Every ``reset(seed=S)`` seeds MetaWorld's own sampler of object and goal positions with S, so an
episode is reproducible from its seed (MetaWorld's ``MT1`` wrapper would pick one of 50 fixed
configurations from a generator the reset seed does not reach).

Modes are approach routes (:data:`ROUTES`): before doing the task, the demonstrating expert takes
the end effector through a via-point on one side of an obstacle — the left or the right end of the
wall (push-wall, pick-place-wall), or the left or the right side of the open drawer (drawer-close).
The midpoint between the two via-points lies inside the obstacle (the wall, the drawer's box), so a
policy that averages the routes runs into it. A rollout's mode is the first route via-point the end
effector came within ``via_radius`` of (-1 while it has passed none), reported in ``infos["mode"]`` at
every step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import gymnasium
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from vfp_il_components.envs.metaworld import (
    DEFAULT_EPISODE_STEPS,
    METAWORLD_EXTRA,
    METAWORLD_MODES,
    MetaWorldEnvConfig,
)

__all__ = ["ROUTES", "MetaWorldStateEnv", "Routes", "import_metaworld", "make_metaworld_env", "metaworld_task_names"]

STATE_KEY: Final = "observation.state"
STATE_DIM: Final = 39
ACTION_DIM: Final = 4
FPS: Final = 80
"""MetaWorld's control rate (``metadata["render_fps"]``): 5 MuJoCo steps of 2.5 ms per action."""
FloatArray = NDArray[np.float64]


def import_metaworld() -> Any:
    """Import metaworld (registers ``Meta-World/*`` with gymnasium), or say which extra installs it."""
    try:
        import metaworld
    except ImportError as exc:
        raise ImportError(f"the metaworld env needs MetaWorld 3 and MuJoCo: {METAWORLD_EXTRA} ({exc})") from exc
    return metaworld


def metaworld_task_names() -> tuple[str, ...]:
    """Every task name MetaWorld 3 has (``push-v3``, ...)."""
    import_metaworld()
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return tuple(sorted(ALL_V3_ENVIRONMENTS))


@dataclass(frozen=True)
class Routes:
    """A task's approach routes: per mode, waypoints (K, 3) computed from the scene at reset.

    ``waypoints(sim, obs)`` returns (M, K, 3); waypoint ``via_index`` of each route is its via-point,
    which classifies an episode's mode. The expert visits the waypoints in order, then hands over to
    MetaWorld's scripted policy.
    """

    mode_names: tuple[str, ...]
    waypoints: Callable[[Any, FloatArray], FloatArray]
    via_index: int = 1

    def via_points(self, sim: Any, obs: FloatArray) -> FloatArray:
        return self.waypoints(sim, obs)[:, self.via_index]


def _box_half_size(sim: Any, body: str) -> FloatArray:
    """Half extents of the first box geom of ``body`` (MuJoCo geom type 6)."""
    model = sim.model
    body_id = model.body(body).id
    for geom in range(model.ngeom):
        if model.geom_bodyid[geom] == body_id and model.geom_type[geom] == 6:
            return np.asarray(model.geom_size[geom], dtype=np.float64)
    raise ValueError(f"body {body!r} has no box geom")


def _around(low: FloatArray, lift: FloatArray) -> FloatArray:
    """Route above the via-point, down to it, and back up: (M, 3, 3) from the via-points (M, 3)."""
    above = low + lift
    return np.stack([above, low, above], axis=1)


def _wall_routes(sim: Any, obs: FloatArray) -> FloatArray:
    # Via-points at both ends of the wall, 7 cm beyond it, at 7 cm height: their midpoint is inside
    # the wall (12 cm high), where an averaging policy's hand lands on the wall and stays stuck.
    center = np.asarray(sim.data.body("wall").xpos, dtype=np.float64)
    half = _box_half_size(sim, "wall")
    offset = half[0] + 0.07
    low = np.array([[center[0] - offset, center[1], 0.07], [center[0] + offset, center[1], 0.07]])
    return _around(low, np.array([0.0, -0.1, 0.13]))


def _pick_place_wall_routes(sim: Any, obs: FloatArray) -> FloatArray:
    # As push-wall, then above the object: handing over there, the expert's grasp starts from where
    # its own route would start it (coming from the far side, it closes the gripper above the object).
    routes = _wall_routes(sim, obs)
    above_object = obs[4:7] + np.array([-0.005, 0.0, 0.15])
    return np.concatenate([routes, np.broadcast_to(above_object, (len(routes), 1, 3))], axis=1)


def _drawer_routes(sim: Any, obs: FloatArray) -> FloatArray:
    # obs[4:7] is the drawer's handle; the open drawer's box extends 8-24 cm behind it (y) and 10 cm to
    # each side (x). Via-points 17 cm to each side, low: their midpoint is inside the drawer's box.
    handle = obs[4:7]
    low = np.array([[handle[0] - 0.17, handle[1] + 0.16, 0.05], [handle[0] + 0.17, handle[1] + 0.16, 0.05]])
    return _around(low, np.array([0.0, 0.0, 0.2]))


ROUTES: Final[dict[str, Routes]] = {
    "push-wall-v3": Routes(METAWORLD_MODES["push-wall-v3"], _wall_routes),
    "pick-place-wall-v3": Routes(METAWORLD_MODES["pick-place-wall-v3"], _pick_place_wall_routes),
    "drawer-close-v3": Routes(METAWORLD_MODES["drawer-close-v3"], _drawer_routes),
}


def _make_gym_env(task: str, seed: int, render_mode: str | None) -> Any:
    names = metaworld_task_names()
    if task not in names:
        raise ValueError(f"unknown MetaWorld task {task!r}; MetaWorld 3 has: {', '.join(names)}")
    # The passive checker would warn at every reset: MetaWorld's goal bounds are a zero-width box.
    return gymnasium.make("Meta-World/MT1", env_name=task, seed=seed, render_mode=render_mode, disable_env_checker=True)


class MetaWorldStateEnv(gymnasium.Env):  # type: ignore[type-arg]
    """One MetaWorld task with dataset-keyed observations, seeded resets and route modes."""

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": FPS}  # noqa: RUF012 (gymnasium's)

    def __init__(
        self,
        task: str,
        *,
        max_episode_steps: int = DEFAULT_EPISODE_STEPS,
        via_radius: float = 0.05,
        terminate_on_success: bool = True,
        seed: int = 0,
        render_mode: str | None = None,
    ) -> None:
        self._gym = _make_gym_env(task, seed, render_mode)
        self.sim: Any = self._gym.unwrapped
        self._gym.reset(seed=seed)  # MT1's wrapper sets one of its fixed tasks: the env refuses to step before
        # Then positions are drawn by MetaWorld's own sampler, from an RNG the reset seed controls.
        self.sim._freeze_rand_vec = False
        self.sim.seeded_rand_vec = True
        self.sim.seed(seed)
        self.task = task
        self.max_episode_steps = max_episode_steps
        self.via_radius = via_radius
        self.terminate_on_success = terminate_on_success
        self.render_mode = render_mode
        self.routes = ROUTES.get(task)
        self.observation_space = spaces.Dict({STATE_KEY: spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32)})
        self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self._steps = 0
        self._mode = -1
        self._via = np.zeros((0, 3))
        self.last_raw_obs: FloatArray = np.zeros(STATE_DIM)

    def _observe(self, raw: FloatArray) -> dict[str, NDArray[np.float32]]:
        self.last_raw_obs = np.asarray(raw, dtype=np.float64)
        return {STATE_KEY: self.last_raw_obs.astype(np.float32)}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, NDArray[np.float32]], dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self.sim.seed(seed)
        raw, _ = self.sim.reset()
        self._steps = 0
        self._mode = -1
        self._via = self.routes.via_points(self.sim, raw) if self.routes is not None else np.zeros((0, 3))
        return self._observe(raw), {"success": False, "mode": -1}

    def step(self, action: NDArray[Any]) -> tuple[dict[str, NDArray[np.float32]], float, bool, bool, dict[str, Any]]:
        action = np.clip(np.asarray(action, dtype=np.float32).reshape(ACTION_DIM), -1.0, 1.0)
        raw, reward, _, _, info = self.sim.step(action)
        self._steps += 1
        if self._mode < 0 and len(self._via):
            distances = np.linalg.norm(self._via - raw[:3], axis=1)
            near = np.flatnonzero(distances < self.via_radius)
            if len(near):
                self._mode = int(near[np.argmin(distances[near])])
        success = bool(info.get("success", 0.0))
        terminated = success and self.terminate_on_success
        truncated = not terminated and self._steps >= self.max_episode_steps
        return self._observe(raw), float(reward), terminated, truncated, {"success": success, "mode": self._mode}

    def render(self) -> Any:
        return self.sim.render()

    def close(self) -> None:
        self._gym.close()


def make_metaworld_env(config: MetaWorldEnvConfig, *, num_envs: int, seed: int, render_mode: str | None = None) -> Any:
    """The ``metaworld`` component: ``num_envs`` copies of the task in a ``gymnasium.vector.SyncVectorEnv``.

    The vector env has ``mode_names`` and ``mode_weights`` when the task has routes (:data:`ROUTES`).
    """
    import_metaworld()
    from gymnasium.vector import SyncVectorEnv

    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
    steps = config.max_episode_steps or DEFAULT_EPISODE_STEPS
    factories = [
        partial(
            MetaWorldStateEnv,
            config.task,
            max_episode_steps=steps,
            via_radius=config.via_radius,
            terminate_on_success=config.terminate_on_success,
            seed=seed + index,
            render_mode=render_mode,
        )
        for index in range(num_envs)
    ]
    env = SyncVectorEnv(factories)  # type: ignore[arg-type]
    routes = ROUTES.get(config.task)
    if routes is not None:
        weights = np.asarray(config.mode_weights or [1.0] * len(routes.mode_names), dtype=np.float64)
        env.mode_names = routes.mode_names  # type: ignore[attr-defined]
        env.mode_weights = tuple(float(w) for w in weights / weights.sum())  # type: ignore[attr-defined]
    return env
