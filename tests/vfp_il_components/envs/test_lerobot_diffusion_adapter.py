"""benchmarks/lerobot_diffusion.py end to end on a tiny scale (lerobot venv only: `nox -s lerobot`).

Two MetaWorld demonstrations become the diffusion dataset (state split into robot and environment
state), LeRobot's ``lerobot-train`` (through the in-memory item launcher) trains the diffusion policy for
2 steps, and the adapter is rolled out by vfp's engine for one 5-step episode.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.lerobot

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def bench() -> Any:
    pytest.importorskip("lerobot")
    pytest.importorskip("metaworld")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        module = importlib.import_module("lerobot_diffusion")
        module.fast_items = importlib.import_module("_lerobot_train_fast_items")
        return module
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


@pytest.mark.timeout(300)
def test_train_two_steps_and_roll_out_through_the_engine(bench: Any, tmp_path: Path) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from vfp_il_components.envs.metaworld_demos import write_metaworld_demos

    source = tmp_path / "demos"
    write_metaworld_demos("metaworld/drawer-close-v3", source, episodes=2, seed=0, data_format="lerobot")
    dataset = bench.write_diffusion_dataset(source, tmp_path / "diffusion", [1], fps=80)

    # The dataset holds only the chosen episode, with every one of the 39 state values split as the adapter splits.
    states, _ = bench._episodes_of(source)[1]
    written = LeRobotDataset("vfp/diffusion", root=dataset)
    assert written.num_episodes == 1
    assert written.num_frames == len(states)
    info = json.loads((dataset / "meta" / "info.json").read_text())
    assert info["vfp_source_episodes"] == [1]
    item = written[3]
    assert np.array_equal(item["observation.state"].numpy(), states[3, list(bench.ROBOT_DIMS)])
    assert np.array_equal(item["observation.environment_state"].numpy(), states[3, list(bench.ENV_DIMS)])
    assert sorted((*bench.ROBOT_DIMS, *bench.ENV_DIMS)) == list(range(39))

    # The in-memory items equal LeRobot's own, padding flags included (items near both episode ends).
    check_items, fast_getitem = bench.fast_items.check_items, bench.fast_items.fast_getitem
    windowed = LeRobotDataset(
        "vfp/diffusion",
        root=dataset,
        delta_timestamps={"observation.state": [-1 / 80, 0.0], "action": [i / 80 for i in range(-1, 15)]},
    )
    check_items(windowed, LeRobotDataset.__getitem__, count=8)
    last = fast_getitem(windowed, len(windowed) - 1)
    assert last["action_is_pad"].tolist() == [False, False] + [True] * 14

    settings = bench.experiment_settings("drawer-close-v3")
    out = tmp_path / "run"
    seconds = bench.train(dataset, out, settings, seed=0, steps=2, batch=4)
    assert seconds > 0
    actor = bench.DiffusionActor(bench.checkpoint_of(out))
    assert actor.inference_steps == 100
    assert actor.n_action_steps == settings["action_steps"]

    # act() on a batch of two observations returns one action per environment, within the demos' range.
    actor.reset()
    actions = actor.act({"observation.state": np.stack([states[0], states[5]])})
    assert actions.shape == (2, 4)
    assert np.isfinite(actions).all()

    settings = {**settings, "max_episode_steps": 5}
    metrics = bench.evaluate(actor, settings, episodes=1)
    assert metrics["mean_episode_length"] == 5.0
    assert metrics["success_rate"] == 0.0
    assert {"mean_return", "mode_entropy", "off_manifold_rate", "mode_freq/left", "mode_freq/right"} <= set(metrics)
