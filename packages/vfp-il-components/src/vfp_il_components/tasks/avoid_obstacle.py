"""``avoid_obstacle``: a point goes from the bottom to a goal at the top, around a disk on the left or the right.

State ``[x, y, goal_x, goal_y]``; actions are target positions (the simulator moves at most
``max_step`` towards them per step). The two routes pass through waypoints ``(±waypoint_x, 0)``; their
average runs straight into the obstacle, so a policy that averages the modes collides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from vfp_il_components.tasks.base import FloatArray, PointEnv, PointMassTask
from vfp_il_components.tasks.geometry import (
    move_towards,
    point_polyline_distance,
    point_segment_distance,
    sample_polyline,
)
from vfp_il_components.tasks.render import Disk, render_disks

LEFT, RIGHT = 0, 1


class AvoidObstacleEnv(PointEnv):
    """Parallel episodes of the obstacle course."""

    def __init__(self, task: AvoidObstacleTask, start: FloatArray, goal: FloatArray) -> None:
        super().__init__(start.copy(), task.max_step)
        self.task = task
        self.goal = goal
        self.side = np.full(len(start), -1, dtype=np.int64)
        self.routes = np.stack([task.route(start, goal, LEFT), task.route(start, goal, RIGHT)], axis=1)  # (B,2,3,2)

    def observe(self) -> FloatArray:
        return np.concatenate([self.positions, self.goal], axis=1)

    def step(self, targets: FloatArray) -> None:
        moving = ~self.failed
        old = self.positions
        new = np.where(moving[:, None], move_towards(old, targets, self.max_step), old)
        center = np.zeros_like(old)
        hit = moving & (point_segment_distance(center, old, new) < self.task.obstacle_radius)
        crossed = moving & (self.side < 0) & (old[:, 1] < 0.0) & (new[:, 1] >= 0.0)
        fraction = np.divide(-old[:, 1], new[:, 1] - old[:, 1], out=np.zeros(len(old)), where=new[:, 1] != old[:, 1])
        x_at_crossing = old[:, 0] + fraction * (new[:, 0] - old[:, 0])
        self.side[crossed] = np.where(x_at_crossing[crossed] < 0.0, LEFT, RIGHT)
        self.positions = new
        self.failed |= hit & ~self.success
        self.success |= moving & ~self.failed & (np.linalg.norm(new - self.goal, axis=1) < self.task.goal_tolerance)
        distance = np.minimum(
            point_polyline_distance(new, self.routes[:, LEFT]), point_polyline_distance(new, self.routes[:, RIGHT])
        )
        self.off_manifold |= moving & ~self.success & ((distance > self.task.tube) | hit)

    def modes(self) -> NDArray[np.int64]:
        return np.where(self.success, self.side, -1).astype(np.int64)


@dataclass(eq=False)
class AvoidObstacleTask(PointMassTask):
    """Reach the goal around an obstacle, passing on the left (``left_probability``) or on the right."""

    name = "avoid_obstacle"
    state_dim = 4
    mode_names = ("left", "right")

    left_probability: float = 0.5
    obstacle_radius: float = 0.35
    waypoint_x: float = 0.75
    speed: float = 0.08
    max_step: float = 0.1
    goal_tolerance: float = 0.1
    tube: float = 0.15
    jitter: float = 0.05
    max_steps: int = 60

    def __post_init__(self) -> None:
        if not 0.0 < self.left_probability < 1.0:
            raise ValueError(f"left_probability must be in (0, 1), got {self.left_probability}")
        if self.waypoint_x <= self.obstacle_radius + self.tube:
            raise ValueError("waypoint_x must leave room for the tube around the obstacle")
        if self.speed > self.max_step:
            raise ValueError("speed must not exceed max_step, or the simulator cannot follow the expert")
        self.mode_weights = np.array([self.left_probability, 1.0 - self.left_probability])

    def waypoints(self, modes: NDArray[np.int64]) -> FloatArray:
        x = np.where(modes == LEFT, -self.waypoint_x, self.waypoint_x)
        return np.stack([x, np.zeros_like(x)], axis=1)

    def route(self, start: FloatArray, goal: FloatArray, mode: int) -> FloatArray:
        """The demonstrated route of ``mode`` (B, 3, 2): start, waypoint, goal."""
        waypoint = self.waypoints(np.full(len(start), mode))
        return np.stack([start, waypoint, goal], axis=1)

    def make_env(self, rng: np.random.Generator, num_episodes: int, *, demonstration: bool = False) -> AvoidObstacleEnv:
        start = np.array([0.0, -1.0]) + rng.uniform(-self.jitter, self.jitter, size=(num_episodes, 2))
        goal = np.array([0.0, 1.0]) + rng.uniform(-self.jitter, self.jitter, size=(num_episodes, 2))
        return AvoidObstacleEnv(self, start, goal)

    def expert_chunk(
        self, states: FloatArray, modes: NDArray[np.int64], horizon: int, rng: np.random.Generator | None = None
    ) -> FloatArray:
        position, goal = states[:, :2], states[:, 2:4]
        waypoint = self.waypoints(modes)
        before_waypoint = (position[:, 1] < 0.0)[:, None]
        middle = np.where(before_waypoint, waypoint, goal)
        polyline = np.stack([position, middle, goal], axis=1)
        return sample_polyline(polyline, self.speed, horizon)

    def render(self, states: FloatArray, image_size: int = 64) -> NDArray[np.uint8]:
        n = len(states)
        disks = [
            Disk(np.zeros((n, 2)), self.obstacle_radius, (90, 90, 90)),
            Disk(states[:, 2:4], self.goal_tolerance, (40, 170, 60)),
            Disk(states[:, :2], 0.06, (220, 40, 40)),
        ]
        return render_disks(disks, n, image_size, extent=1.25)
