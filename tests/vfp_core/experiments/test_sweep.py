"""`vfp sweep` on Optuna's journal storage: spec errors before any trial, pruning, and two workers of which
one is killed mid-trial and restarted: no trial is lost or run twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from experiments_helpers import vfp

optuna = pytest.importorskip("optuna")

FAST = '["logging.callbacks=[{type: jsonl}]", threads=1'


def _spec(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _trials(journal: Path, name: str) -> list[Any]:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(journal)))
    return list(optuna.load_study(study_name=name, storage=storage).get_trials())


def test_an_unknown_config_key_is_rejected_with_file_and_line_before_any_trial(tmp_path: Path) -> None:
    spec = _spec(
        tmp_path / "bad.yaml",
        "experiment: sample/regression\n"
        "space:\n"
        "  optimizers.default.lr: {type: log_uniform, low: 1e-3, high: 1e-1}\n"
        "  optimizers.default.lrr: {type: choice, values: [0.1, 0.2]}\n"
        "trials: 2\n",
    )
    result = vfp("sweep", str(spec), cwd=tmp_path)
    assert result.returncode == 2
    validate = vfp("config", "validate", "sample/regression", "optimizers.default.lrr=0.1", cwd=tmp_path)
    expected = validate.stderr.strip().splitlines()[-1].split(": ", 1)[1]  # what follows "<override ...>: "
    assert f"{spec}:4: {expected}" in result.stderr
    assert "unknown key 'lrr' (did you mean 'lr'?)" in expected
    assert not (tmp_path / "runs").exists()  # no study, no trial


def test_spec_problems_name_their_line(tmp_path: Path) -> None:
    spec = _spec(
        tmp_path / "bad.yaml",
        "experiment: sample/regression\n"
        "space:\n"
        "  optimizers.default.lr: {type: uniform, low: 1.0, high: 0.1}\n"
        "trials: 2\n"
        "sampler: bayes\n",
    )
    result = vfp("sweep", str(spec), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{spec}:3: space.optimizers.default.lr" in result.stderr
    assert "must be below high" in result.stderr
    assert f"{spec}:5: sampler" in result.stderr


def test_a_trial_worse_than_the_median_is_pruned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vfp.experiments.sweep import SweepWorker
    from vfp.experiments.sweep_spec import load_spec

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    spec = _spec(
        tmp_path / "prune.yaml",
        "experiment: sample/regression\n"
        f"overrides: {FAST}, training.max_steps=4000, evaluation.every=50, checkpointing.every=0]\n"
        "space:\n"
        "  optimizers.default.lr: {type: choice, values: [0.05, 0.00001]}\n"
        "trials: 2\n"
        "sampler: random\n"
        "pruner: median\n"
        "pruner_startup_trials: 1\n",
    )
    loaded = load_spec(spec)
    lines: list[str] = []
    worker = SweepWorker(loaded, lines.append)
    worker.study.enqueue_trial({"optimizers.default.lr": 0.05})  # the good one first, then the bad one
    worker.study.enqueue_trial({"optimizers.default.lr": 0.00001})
    assert worker.run() == 0
    trials = _trials(loaded.journal, "prune")
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED"], lines
    pruned_run = Path(trials[1].user_attrs["run_dirs"][0])
    steps = [json.loads(line)["step"] for line in (pruned_run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) < 4000  # stopped early (SIGTERM: the engine checkpointed and exited)
    assert max(trials[1].intermediate_values) < 4000
    status = vfp("sweep", "status", str(spec), "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["best"]["number"] == 0
    assert [t["state"] for t in data["trials"]] == ["complete", "pruned"]


def _start_worker(spec: Path, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vfp", "sweep", str(spec)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"},
    )


def test_two_workers_one_killed_mid_trial_and_restarted_lose_no_trial(tmp_path: Path) -> None:
    spec = _spec(
        tmp_path / "kill.yaml",
        "experiment: sample/regression\n"
        f"overrides: {FAST}, training.max_steps=2500, evaluation.every=500, checkpointing.every=250]\n"
        "space:\n"
        "  optimizers.default.lr: {type: choice, values: [0.05, 0.02, 0.01]}\n"
        "trials: 3\n"
        "sampler: grid\n"
        "output: sweep\n",
    )
    journal = tmp_path / "sweep" / "study.journal"
    first, second = _start_worker(spec, tmp_path), _start_worker(spec, tmp_path)
    victim = None
    deadline = time.time() + 120
    try:
        while victim is None and time.time() < deadline:  # a trial of the first worker with a checkpoint
            time.sleep(0.5)
            if not journal.exists():
                continue
            for trial in _trials(journal, "kill"):
                mine = trial.user_attrs.get("worker", "").endswith(f":{first.pid}")
                dirs = trial.user_attrs.get("run_dirs", [])
                if mine and trial.state.name == "RUNNING" and dirs and any(Path(dirs[0], "checkpoints").glob("*.pt")):
                    victim = trial
        assert victim is not None, "the first worker never had a trial with a checkpoint"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        restarted = _start_worker(spec, tmp_path)
        out_restarted, _ = restarted.communicate(timeout=240)
        out_second, _ = second.communicate(timeout=240)
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.kill()
    assert restarted.returncode == 0, out_restarted
    assert second.returncode == 0, out_second

    trials = _trials(journal, "kill")
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    # every grid point completed exactly once: nothing lost, nothing run twice
    assert sorted(t.params["optimizers.default.lr"] for t in complete) == [0.01, 0.02, 0.05]
    assert [t.state.name for t in trials if t.number == victim.number] == ["FAIL"]
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retry) == 1
    assert retry[0].state.name == "COMPLETE"
    assert retry[0].params == victim.params
    assert len(trials) == 4  # three trials and the retry
    assert "queued again" in out_restarted + out_second
    # the retry resumed the killed run in its folder from its checkpoint, and finished it
    run_dir = Path(victim.user_attrs["run_dirs"][0])
    assert retry[0].user_attrs["run_dirs"] == [str(run_dir)]
    env = json.loads((run_dir / "env.json").read_text())
    assert len(env["previous"]) >= 1
    assert "--resume" in env["command"]
    assert (run_dir / "checkpoints" / "step_00002500.pt").exists()
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in records if r["split"] == "train"]
    assert train_steps == sorted(set(train_steps))
    assert train_steps[-1] == 2500
    status = vfp("sweep", "status", str(tmp_path / "sweep"), cwd=tmp_path, env={"COLUMNS": "200"})
    assert status.returncode == 0, status.stderr
    assert "fail" in status.stdout
    assert f"retry of {victim.number}" in status.stdout
