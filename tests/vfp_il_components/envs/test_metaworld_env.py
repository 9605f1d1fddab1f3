"""The ``metaworld`` env and its multi-modal demonstrations, run in MetaWorld itself (no rendering).

Skipped where MetaWorld is not installed (the extra ``vfp-il-components[metaworld]``; the nox ``tests``
session installs it). Episodes are few and short: MuJoCo steps at a few hundred per second here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("metaworld")

from vfp.envs import build_env, rollout
from vfp_il_components.cli import app as data_app
from vfp_il_components.envs.metaworld import MetaWorldEnvConfig
from vfp_il_components.envs.metaworld_demos import MetaWorldDemos, RouteExpert, demo_reset_seed, expert_success
from vfp_il_components.envs.metaworld_env import ROUTES, MetaWorldStateEnv

STATE = "observation.state"


def make_env(task: str, num_envs: int, **fields: Any) -> Any:
    config = MetaWorldEnvConfig.model_validate({"type": "metaworld", "task": task, **fields})
    return build_env(config, num_envs=num_envs, seed=0)


def test_the_vector_env_has_dataset_keyed_spaces_and_the_tasks_modes() -> None:
    env = make_env("push-wall-v3", 2)
    try:
        space = env.single_observation_space[STATE]
        assert (space.shape, space.dtype) == ((39,), np.float32)
        action = env.single_action_space
        assert action.shape == (4,)
        assert (action.low == -1).all()
        assert (action.high == 1).all()
        assert tuple(env.mode_names) == ("left", "right")
        assert tuple(env.mode_weights) == (0.5, 0.5)
        observation, _ = env.reset(seed=0)
        assert observation[STATE].shape == (2, 39)
        assert observation[STATE].dtype == np.float32
        assert np.isfinite(observation[STATE]).all()
    finally:
        env.close()


def test_a_reset_seed_reproduces_the_scene_and_another_seed_changes_it() -> None:
    env = MetaWorldStateEnv("push-wall-v3", seed=0)
    try:
        first = env.reset(seed=7)[0][STATE]
        env.reset(seed=8)
        again = env.reset(seed=7)[0][STATE]
        other = env.reset(seed=8)[0][STATE]
    finally:
        env.close()
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first[4:7], other[4:7])  # the puck moved


def test_an_unknown_task_names_metaworlds_tasks() -> None:
    with pytest.raises(ValueError, match="push-wall-v3"):
        MetaWorldStateEnv("push-the-moon-v3")


@pytest.mark.parametrize("task", sorted(ROUTES))
@pytest.mark.parametrize("mode", [0, 1])
def test_the_scripted_expert_succeeds_on_each_route_and_the_env_classifies_it(task: str, mode: int) -> None:
    result = expert_success(task, mode, episodes=1, seed=1)
    assert result["success_rate"] == 1.0
    assert result["mode_match_rate"] == 1.0


@pytest.mark.parametrize("task", sorted(ROUTES))
def test_the_midpoint_of_the_routes_fails(task: str) -> None:
    """The mode average lies inside the obstacle: the expert sent there never gets to do the task."""
    result = expert_success(task, "midpoint", episodes=1, seed=1)
    assert result["success_rate"] == 0.0
    assert result["mode_match_rate"] == 0.0


class DrawerRouteActor:
    """The scripted expert on one route, behind the engine's ``reset``/``act`` interface (drawer-close:
    its routes depend on the observation only)."""

    def __init__(self, mode: int) -> None:
        self.mode = mode
        self.experts: list[RouteExpert] = []

    def reset(self) -> None:
        self.experts = []

    def act(self, observation: Mapping[str, Any]) -> np.ndarray[Any, Any]:
        states = np.asarray(observation[STATE], dtype=np.float64)
        if not self.experts:
            routes = ROUTES["drawer-close-v3"]
            self.experts = [RouteExpert("drawer-close-v3", routes.waypoints(None, s)[self.mode]) for s in states]
        return np.stack([expert(state) for expert, state in zip(self.experts, states, strict=True)])


def test_the_engines_rollout_reports_success_and_the_route_taken() -> None:
    env = make_env("drawer-close-v3", 2)
    try:
        metrics = rollout(DrawerRouteActor(1), env, episodes=2, seed=0).metrics()
    finally:
        env.close()
    assert metrics["success_rate"] == 1.0
    assert metrics["mode_freq/right"] == 1.0
    assert metrics["mode_freq/left"] == 0.0


def test_demos_keep_successful_episodes_with_their_modes() -> None:
    demos = MetaWorldDemos("drawer-close-v3", mode_weights=[1.0, 0.0]).generate_demos(2, seed=0)
    assert [d.mode for d in demos] == [0, 0]
    for demo in demos:
        assert demo.observations["state"].shape == (len(demo), 39)
        assert demo.actions.shape == (len(demo), 4)
        assert np.abs(demo.actions).max() <= 1.0
        # it went the left way: the hand passed left of the handle's starting x
        assert demo.observations["state"][:, 0].min() < demo.observations["state"][0, 4] - 0.15


def test_demos_start_from_other_scenes_than_an_evaluation() -> None:
    """Evaluations reset with small seeds (``evaluation.seed`` + episode): demonstrations never do."""
    seeds = {demo_reset_seed(seed, attempt) for seed in range(3) for attempt in range(400)}
    assert len(seeds) == 1200
    assert min(seeds) >= 100_000


def test_vfp_data_demo_writes_a_metaworld_dataset_the_hdf5_loader_reads(tmp_path: Path) -> None:
    out = tmp_path / "drawer.hdf5"
    result = CliRunner().invoke(data_app, ["demo", "metaworld/drawer-close-v3", str(out), "-n", "3"])
    assert result.exit_code == 0, result.output
    assert "wrote 3 episodes" in result.output
    with h5py.File(out) as file:
        assert json.loads(file.attrs["vfp_env"]) == {
            "type": "metaworld",
            "task": "drawer-close-v3",
            "max_episode_steps": 300,
        }
        assert "vfp_task" not in file.attrs  # not a synthetic task: trainers must not evaluate on it themselves
        demos = file["data"]
        assert len(demos) == 3
        for name in demos:
            assert demos[name]["obs/state"].shape[1] == 39
            assert demos[name].attrs["vfp_mode_name"] in ("left", "right")
    inspect = CliRunner().invoke(data_app, ["inspect", str(out), "--json"])
    assert inspect.exit_code == 0, inspect.output
    assert json.loads(inspect.stdout)["episodes"] == 3


def test_vfp_data_demo_refuses_images_and_unknown_metaworld_tasks(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(data_app, ["demo", "metaworld/drawer-close-v3", str(tmp_path / "a.hdf5"), "--images"])
    assert result.exit_code == 2
    assert "state-only" in result.output
    result = runner.invoke(data_app, ["demo", "metaworld/push-v3", str(tmp_path / "b.hdf5"), "-n", "1"])
    assert result.exit_code == 1
    assert "metaworld/push-wall-v3" in result.output
    assert not (tmp_path / "b.hdf5").exists()
