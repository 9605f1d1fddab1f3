"""Closed-loop evaluation owned by the engine: during training, in ``vfp eval --env``, best checkpoints, bad envs."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from textwrap import dedent

import pytest
from env_helpers import STEPS, train_with_env, val_records

from vfp._plugins import PluginHost, reset_host
from vfp.config import ConfigError, load_experiment
from vfp.engine import TrainOptions, train
from vfp.envs import EnvError
from vfp.envs.evaluate import evaluate_saved_policy
from vfp.policy import load_policy

sys.path.insert(0, str(Path(__file__).parents[1] / "policy"))
from policy_helpers import vfp_cli

CLOSED_LOOP = ("success_rate", "mean_return", "mean_episode_length", "off_manifold_rate", "mode_entropy", "mode_tv")


def test_training_reports_the_engines_closed_loop_metrics(env_run: Path) -> None:
    records = val_records(env_run)
    assert sorted(records) == [10, 20]
    for metrics in records.values():
        assert set(CLOSED_LOOP) <= set(metrics)
        assert {"mode_freq/left", "mode_freq/right"} <= set(metrics)
        assert "sinkhorn" not in metrics  # the trainer's own task evaluation was not run: the engine's replaced it
        assert "action_mse" in metrics  # held-out metrics are still computed


def test_vfp_eval_env_on_a_checkpoint_gives_what_training_measured_on_the_live_weights(env_run: Path) -> None:
    report = evaluate_saved_policy(env_run, "avoid_obstacle", checkpoint=str(STEPS))
    assert report.step == STEPS
    measured = val_records(env_run)[STEPS]
    assert set(CLOSED_LOOP) <= set(report.metrics)
    assert dict(report.metrics) == {key: measured[key] for key in report.metrics}  # exactly, not approximately


def test_best_checkpoints_are_kept_and_loadable(env_run: Path) -> None:
    directory = env_run / "checkpoints"
    record = json.loads((directory / "best.json").read_text())
    lengths = {step: m["mean_episode_length"] for step, m in val_records(env_run).items()}
    best_step = min(lengths, key=lambda s: (lengths[s], s))
    assert (record["metric"], record["mode"]) == ("mean_episode_length", "min")
    assert record["entries"][0]["step"] == best_step
    assert len(record["entries"]) == 2
    assert (directory / "best").read_text().strip() == f"best_step_{best_step:08d}.pt"
    assert sorted(p.name for p in directory.glob("step_*.pt")) == [f"step_{STEPS:08d}.pt"]  # keep_last 1
    assert load_policy(env_run, checkpoint="best").metadata.step == best_step


def test_vfp_eval_checkpoint_best_and_env_on_the_command_line(env_run: Path, tmp_path: Path) -> None:
    result = vfp_cli(
        "eval", str(env_run), "--env", "avoid_obstacle", "--checkpoint", "best", "--episodes", "3", "--json",
        "--video", str(tmp_path / "videos"), "--video-episodes", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert set(CLOSED_LOOP) <= set(metrics)
    assert "best_step_" in result.stderr
    videos = sorted(p.name for p in (tmp_path / "videos").iterdir())
    assert [Path(v).stem for v in videos] == ["episode_0000", "episode_0001"]


def test_an_env_that_is_not_installed_names_the_installed_ones(env_run: Path) -> None:
    with pytest.raises(EnvError, match=r"unknown env type 'avoid_obstacles'.*did you mean 'avoid_obstacle'.*"
                       r"installed env types: [^;]*avoid_obstacle[^;]*mixture[^;]*ordered_subgoals"):  # fmt: skip
        evaluate_saved_policy(env_run, "avoid_obstacles")
    with pytest.raises(ConfigError, match=r"evaluation\.env\.type: unknown env type 'nope'.*installed env types"):
        load_experiment("quickstart", ["evaluation.env={type: nope}"])


def test_an_outside_env_is_rolled_out_by_vfp_eval_with_no_trainer_change(env_run: Path, line_world: Path) -> None:
    result = vfp_cli("eval", str(env_run), "--env", "line_world", "--episodes", "4", "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert set(metrics) == {"success_rate", "mean_return", "mean_episode_length"}  # no modes: no mode metrics
    assert 0.0 <= metrics["success_rate"] <= 1.0
    assert 1 <= metrics["mean_episode_length"] <= 40


def test_an_env_that_does_not_match_the_policy_is_refused_before_any_step(env_run: Path, line_world: Path) -> None:
    host = PluginHost()
    reset_host(host)
    import vfp_lineworld  # type: ignore[import-not-found]

    vfp_lineworld.STEPS_TAKEN.clear()
    saved = {"env": {"type": "line_world", "state_dim": 3}}
    from vfp.envs.evaluate import env_section

    section = env_section("line_world", saved, host)
    from vfp.envs import evaluate_in_env

    policy = load_policy(env_run)
    with pytest.raises(EnvError, match=r"observation\.state: the env gives shape \(3,\), the policy expects \(4,\)"):
        evaluate_in_env(policy, section, episodes=2, host=host)
    assert vfp_lineworld.STEPS_TAKEN == []


def test_an_env_that_raises_mid_rollout_is_reported_and_training_keeps_going(tmp_path: Path, line_world: Path) -> None:
    reset_host(PluginHost())
    with pytest.warns(RuntimeWarning, match=r"env 'line_world' raised in step of episodes 0-7 at step 3: "
                      r"RuntimeError: the simulator exploded; training continues"):  # fmt: skip
        run = train_with_env(
            tmp_path / "run", tmp_path / "demos.hdf5", "evaluation.env={type: line_world, raise_at_step: 3}"
        )
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*.pt")) == [f"step_{STEPS:08d}.pt"]
    assert json.loads((run / "status.json").read_text())["status"] == "completed"
    assert "success_rate" not in val_records(run)[STEPS]


def test_a_mismatched_env_stops_training_before_the_first_step(tmp_path: Path, line_world: Path) -> None:
    reset_host(PluginHost())
    config = load_experiment(
        "quickstart",
        [f"data.path={tmp_path / 'demos.hdf5'}", "data.generate.episodes=12", "evaluation.env={type: line_world, "
         "state_dim: 5}", "logging.callbacks=[{type: jsonl}]"],
    ).config  # fmt: skip
    with pytest.raises(EnvError, match=r"env 'line_world' does not match the policy's features"):
        train(config, TrainOptions(run_dir=tmp_path / "run", progress="none"))
    assert not list((tmp_path / "run" / "checkpoints").glob("*.pt"))


SAMPLE_ON_TASK = """\
description: the vfp-sample plugin's regression trainer (no closed-loop code of its own) on avoid_obstacle demos
seed: 0
device: cpu
data:
  type: hdf5
  path: {data}
  generate: {{task: avoid_obstacle, episodes: 12, seed: 0, task_options: {{left_probability: 0.9}}}}
  state_keys: [state]
  history: 1
  horizon: 1
  batch_size: 64
model:
  net:
    arch: {{type: sample_linear, hidden: 32}}
losses:
  fit: {{type: sample_huber}}
optimizers:
  default: {{type: sample_sgd, lr: 0.05}}
trainer:
  type: sample_regression
training: {{max_steps: 20}}
evaluation:
  every: 0
  episodes: 6
  env: {{type: avoid_obstacle, options: {{left_probability: 0.9}}}}
logging: {{callbacks: [{{type: jsonl}}]}}
"""


def test_an_outside_trainer_with_no_evaluation_code_gets_closed_loop_success(tmp_path: Path) -> None:
    path = tmp_path / "sample_on_task.yaml"
    path.write_text(dedent(SAMPLE_ON_TASK.format(data=tmp_path / "demos.hdf5")), encoding="utf-8")
    config = load_experiment(str(path), []).config
    result = train(config, TrainOptions(run_dir=tmp_path / "run", progress="none"))
    assert result.status == "completed", result.message
    metrics = val_records(tmp_path / "run")[20]
    assert set(CLOSED_LOOP) <= set(metrics)
    assert metrics["demo_mode_entropy"] == pytest.approx(-(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) / math.log(2))
    assert "mae_original_units" not in metrics  # the sample trainer's own evaluate is left to the engine's rollout
