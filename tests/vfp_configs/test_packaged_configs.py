"""Every packaged experiment of vfp-configs validates and trains a few steps through `vfp train`.

Each run uses a small generated dataset (the configs' ``data.generate`` writes it; configs that generate
the same data share one file) and the JSONL logger only; evaluation settings that cost time are shrunk by
overrides. ``mutual_information_estimator/vfp_run`` is pointed at the quickstart run trained here.

The packaged experiments of the synthetic task are rolled out by the engine (``evaluation.env``), not by
their trainers' deprecated 1.0 ``evaluate_policy``: the quickstart is trained with DeprecationWarnings as
errors, so a packaged config that went back to the trainer-side path fails here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from vfp._plugins import get_host, reset_host
from vfp.config import ConfigCatalog, ExperimentConfig, load_experiment
from vfp.engine.checkpoint import load_component_weights


def _packaged_experiments() -> list[str]:
    reset_host()
    try:
        names = [e.name for e in ConfigCatalog(get_host()).experiments() if e.distribution == "vfp-configs"]
    finally:
        reset_host()
    return sorted(names)


EXPERIMENTS = _packaged_experiments()
EXPECTED = {
    "quickstart",
    *(
        f"{trainer}/exp{n}"
        for trainer in (
            "naive_flow_matching_policy",
            "variational_flow_matching_policy",
            "vfp_single_expert",
            "cfg_vqvae_flow_matching",
            "mutual_information_estimator",
        )
        for n in (1, 2)
    ),
}


NO_DEPRECATIONS = ("-W", "error::DeprecationWarning")
"""Python options that turn every DeprecationWarning into an error (a deprecated evaluation fails the command)."""


def _vfp(*args: str, cwd: Path, python: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, *python, "-m", "vfp", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        check=False,
        env=env,
    )


def _fast_overrides(config: ExperimentConfig, data_path: Path) -> list[str]:
    """Three steps on 20 generated demos; warm-ups, closed-loop episodes and probes shrunk to fit."""
    overrides = [
        "training.max_steps=3",
        f"data.path={data_path}",
        "data.generate.episodes=20",
        "logging.callbacks=[{type: jsonl}]",
    ]
    for name, optimizer in config.optimizers.items():
        if getattr(optimizer, "warmup_steps", 0):
            overrides.append(f"optimizers.{name}.warmup_steps=1")
    if config.evaluation.env is not None:  # the engine's closed loop: two short episodes
        overrides += ["evaluation.episodes=2", "evaluation.max_episode_steps=10"]
    probe = getattr(config.trainer, "mode_probe", None)
    if probe is not None:
        overrides += ["trainer.mode_probe.samples=64", "trainer.mode_probe.fit_steps=10"]
    return overrides


def test_the_issue_s_experiments_are_packaged() -> None:
    assert set(EXPERIMENTS) >= EXPECTED


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_packaged_experiment_validates(name: str) -> None:
    config = load_experiment(name, []).config
    assert config.data.type in ("hdf5", "lerobot")


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if n.endswith("exp1")])
def test_every_exp1_trains_on_the_same_data_steps_and_batch(name: str) -> None:
    config = load_experiment(name, []).config
    reference = load_experiment("naive_flow_matching_policy/exp1", []).config
    assert config.data.model_dump() == reference.data.model_dump()
    assert config.training.max_steps == reference.training.max_steps
    assert config.data.generate.task == "avoid_obstacle"  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if n.endswith("exp2")])
def test_every_exp2_sees_images(name: str) -> None:
    config = load_experiment(name, []).config
    assert config.data.image_keys == ["image"]  # type: ignore[attr-defined]
    assert config.data.generate.images  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder of generated demos for the module: a file per distinct ``data.generate`` setting."""
    return tmp_path_factory.mktemp("demos")


def _data_path(config: ExperimentConfig, folder: Path) -> Path:
    generate = getattr(config.data, "generate", None)
    settings = json.dumps(generate.model_dump() if generate is not None else None, sort_keys=True, default=str)
    return folder / f"{hashlib.sha256(settings.encode()).hexdigest()[:12]}.hdf5"


def _train(
    name: str, run_dir: Path, demos: Path, *extra: str, python: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    config = load_experiment(name, []).config
    overrides = _fast_overrides(config, _data_path(config, demos))
    return _vfp("train", name, *overrides, *extra, "--run-dir", str(run_dir), cwd=run_dir.parent, python=python)


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory, demos: Path) -> Path:
    """``vfp train quickstart`` for 5 steps with DeprecationWarnings as errors (the final evaluation included)."""
    run_dir = tmp_path_factory.mktemp("quickstart") / "run"
    result = _train("quickstart", run_dir, demos, "training.max_steps=5", python=NO_DEPRECATIONS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DeprecationWarning" not in result.stdout + result.stderr
    return run_dir


MI_ON_VFP = "mutual_information_estimator/vfp_run"  # needs a VFP run: its own test below


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if n != MI_ON_VFP])
def test_packaged_experiment_trains_a_few_steps(name: str, tmp_path: Path, demos: Path, request: Any) -> None:
    if name.startswith("metaworld/") and importlib.util.find_spec("metaworld") is None:
        pytest.skip("needs the extra vfp-il-components[metaworld] (the nox tests session installs it)")
    if name == "quickstart":  # trained once, by the fixture the eval tests share (5 steps)
        run_dir = request.getfixturevalue("quickstart_run")
    else:
        run_dir = tmp_path / "run"
        result = _train(name, run_dir, demos)
        assert result.returncode == 0, result.stdout + result.stderr
    assert (run_dir / "checkpoints" / "latest").exists()
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == (5 if name == "quickstart" else 3)


def test_mi_on_a_vfp_run_loads_and_keeps_its_encoder(quickstart_run: Path, tmp_path: Path, demos: Path) -> None:
    run_dir = tmp_path / "mi"
    overrides = [f"model.obs_encoder.init_from={quickstart_run}", f"model.posterior.init_from={quickstart_run}"]
    result = _train(MI_ON_VFP, run_dir, demos, *overrides)
    assert result.returncode == 0, result.stdout + result.stderr
    for component in ("obs_encoder", "posterior"):
        loaded, source = load_component_weights(run_dir, component), load_component_weights(quickstart_run, component)
        assert loaded.keys() == source.keys()
        for key in source:  # frozen: the MI run's weights are still the VFP run's, bit for bit
            assert torch.equal(loaded[key], source[key]), f"{component}.{key}"
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert max(record["step"] for record in logged) == 3
    assert any(key.startswith("mi/") for record in logged for key in record)


def test_mi_on_a_vfp_run_names_a_missing_run(tmp_path: Path, demos: Path) -> None:
    run_dir = tmp_path / "mi"
    result = _train(MI_ON_VFP, run_dir, demos, f"model.posterior.init_from={tmp_path / 'no-such-run'}")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "model.obs_encoder.init_from" in result.stderr or "model.posterior.init_from" in result.stderr
    assert not (run_dir / "checkpoints" / "latest").exists()


CLOSED_LOOP = ("success_rate", "mode_entropy", "mode_tv", "off_manifold_rate", "mode_freq/left", "mode_freq/right")


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if not n.startswith(("metaworld/", "mutual_information"))])
def test_synthetic_experiments_are_rolled_out_by_the_engine(name: str) -> None:
    loaded = load_experiment(name, [])
    config = loaded.config
    assert config.evaluation.env is not None
    assert config.evaluation.env.type == config.data.generate.task  # type: ignore[attr-defined]
    # the trainer-side 1.0 settings are gone from the YAMLs (the engine ignores them): no dead keys
    assert "evaluation" not in loaded.located.data["trainer"]
    assert (config.evaluation.episodes, config.evaluation.seed, config.evaluation.action_steps) == (100, 1000, 8)
    if config.data.image_keys:  # type: ignore[attr-defined]
        assert config.evaluation.env.images  # type: ignore[attr-defined]
        assert config.evaluation.env.image_size == config.data.generate.image_size  # type: ignore[attr-defined]


def test_quickstart_is_rolled_out_by_the_engine_without_deprecation_warnings(quickstart_run: Path) -> None:
    """The fixture trained it with ``-W error::DeprecationWarning``: the trainer-side ``evaluate_policy`` (which
    warns) would have failed the final evaluation. The engine's rollout reports its episode metrics."""
    logged = [json.loads(line) for line in (quickstart_run / "metrics.jsonl").read_text().splitlines()]
    (final,) = [record for record in logged if record.get("split") == "val"]
    for key in CLOSED_LOOP:
        assert 0.0 <= final[key] <= 1.0, key
    assert 0 < final["mean_episode_length"] <= 10  # the engine's metric, with evaluation.max_episode_steps=10
    assert "sinkhorn" not in final  # only the trainer-side path compares first chunks with the expert's


def test_vfp_eval_reports_task_metrics_at_the_chosen_steps(quickstart_run: Path) -> None:
    reports = {}
    for steps in (1, 3):
        result = _vfp(
            "eval",
            str(quickstart_run),
            "--json",
            "--steps",
            str(steps),
            cwd=quickstart_run.parent,
            python=NO_DEPRECATIONS,
        )
        assert result.returncode == 0, result.stderr
        reports[steps] = json.loads(result.stdout)
        for key in CLOSED_LOOP:
            assert 0.0 <= reports[steps][key] <= 1.0, key
        assert reports[steps]["mean_episode_length"] > 0
    # the integration steps are used: sampled chunks (held-out action error) differ between 1 and 3 steps
    assert reports[1]["action_mse"] != reports[3]["action_mse"]
