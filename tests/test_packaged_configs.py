"""Every packaged experiment of vfp-configs validates and trains a few steps through `vfp train`.

Each run uses a small generated dataset in ``tmp_path`` (the configs' ``data.generate`` writes it)
and the JSONL logger only; evaluation settings that cost time are shrunk by overrides.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vfp._plugins import get_host, reset_host
from vfp.config import ConfigCatalog, ExperimentConfig, load_experiment


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


def _vfp(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "vfp", *args], capture_output=True, text=True, cwd=cwd, timeout=600, check=False, env=env
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
    evaluation = getattr(config.trainer, "evaluation", None)
    if evaluation is not None and hasattr(evaluation, "episodes"):
        overrides.append("trainer.evaluation.episodes=4")
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


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_packaged_experiment_trains_a_few_steps(name: str, tmp_path: Path) -> None:
    config = load_experiment(name, []).config
    run_dir = tmp_path / "run"
    result = _vfp(
        "train", name, *_fast_overrides(config, tmp_path / "demos.hdf5"), "--run-dir", str(run_dir), cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (run_dir / "checkpoints" / "latest").exists()
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 3


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("quickstart")
    config = load_experiment("quickstart", []).config
    overrides = [*_fast_overrides(config, folder / "demos.hdf5"), "training.max_steps=5"]
    result = _vfp("train", "quickstart", *overrides, "--run-dir", str(folder / "run"), cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    return folder / "run"


def test_quickstart_prints_its_closed_loop_metrics(quickstart_run: Path) -> None:
    logged = [json.loads(line) for line in (quickstart_run / "metrics.jsonl").read_text().splitlines()]
    assert any("success_rate" in record for record in logged)


@pytest.mark.parametrize("steps", [1, 3])
def test_vfp_eval_reports_task_metrics_at_the_chosen_steps(quickstart_run: Path, steps: int) -> None:
    result = _vfp("eval", str(quickstart_run), "--json", "--steps", str(steps), cwd=quickstart_run.parent)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    for key in ("success_rate", "mode_entropy", "off_manifold_rate", "mode_freq/left", "mode_freq/right"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["integration_steps"] == steps
