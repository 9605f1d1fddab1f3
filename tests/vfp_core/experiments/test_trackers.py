"""The wandb and mlflow logger callbacks, with the real libraries: W&B in offline mode (its local run files
are read back), MLflow with a local SQLite store. A run and its resume log into the same tracker run."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from experiments_helpers import QUICK, vfp, wandb_records

wandb = pytest.importorskip("wandb")
mlflow = pytest.importorskip("mlflow")


def _isolated_env(tmp_path: Path) -> dict[str, str]:
    """Every place W&B and MLflow may write to, inside tmp_path (HOME too, to catch strays)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {
        "HOME": str(home),
        "WANDB_DIR": str(tmp_path / "wandb-files"),
        "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"),
        "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"),
        "WANDB_DATA_DIR": str(tmp_path / "wandb-data"),
        "WANDB_SILENT": "true",
        "WANDB_DISABLE_GIT": "true",
        "MLFLOW_TRACKING_URI": "",
    }


def _last(run_dir: Path, split: str, key: str) -> float:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    value: float = [line[key] for line in lines if line["split"] == split][-1]
    return value


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A 10-step run logging to W&B (offline) and MLflow (a local SQLite store), resumed to step 20.

    Returns the folder and the tracker-id files as they were after the first session."""
    root = tmp_path_factory.mktemp("trackers")
    env = _isolated_env(root)
    callbacks = (
        "logging.callbacks=[{type: jsonl}, {type: wandb, project: vfp-tests, mode: offline, tags: [smoke]}, "
        f"{{type: mlflow, tracking_uri: '{_mlflow_uri(root)}', experiment: vfp-tests, tags: {{team: il}}}}]"
    )
    first = vfp("train", "sample/regression", *QUICK, callbacks, "--max-steps", "10", "--run-dir", "runs/t",
                "--progress", "none", cwd=root, env=env)  # fmt: skip
    assert first.returncode == 0, first.stderr
    ids = {name: (root / "runs" / "t" / name).read_text() for name in ("wandb.json", "mlflow.json")}
    second = vfp("train", "--resume", "runs/t", "--max-steps", "20", "--progress", "none", cwd=root, env=env)
    assert second.returncode == 0, second.stderr
    assert "logger:" not in first.stderr + second.stderr  # no tracker warned
    return root, ids


def _mlflow_uri(root: Path) -> str:
    return f"sqlite:///{root / 'mlflow.db'}"


def test_wandb_offline_run_is_continued_on_resume(tracked_run: tuple[Path, dict[str, str]]) -> None:
    tmp_path, ids = tracked_run
    run_dir = tmp_path / "runs" / "t"
    run_id = json.loads(ids["wandb.json"])["id"]
    assert json.loads((run_dir / "wandb.json").read_text())["id"] == run_id

    sessions = sorted((tmp_path / "wandb-files" / "wandb").glob("offline-run-*"))
    assert len(sessions) == 2
    assert all(session.name.endswith(f"-{run_id}") for session in sessions)  # one W&B run, two sessions
    first_log, second_log = (wandb_records(session / f"run-{run_id}.wandb") for session in sessions)

    def of(records: list[Any], kind: str) -> list[Any]:
        return [getattr(r, kind) for r in records if r.WhichOneof("record_type") == kind]

    assert [r.run_id for r in of(second_log, "run")] == [run_id]
    assert of(second_log, "run")[0].project == "vfp-tests"
    config = {item.key: json.loads(item.value_json) for item in of(second_log, "run")[0].config.update}
    assert config["optimizers"]["default"]["lr"] == 0.05
    assert config["training"]["max_steps"] == 20
    assert config["env"]["command"][:3] == ["vfp", "train", "--resume"]  # env.json of this session
    assert [h.step.num for h in of(first_log, "history")] == [5, 10]
    assert [h.step.num for h in of(second_log, "history")] == [15, 20]  # the curve goes on from the resumed step
    summary = {  # keys with a slash come as nested keys
        item.key or "/".join(item.nested_key): json.loads(item.value_json)
        for record in of(second_log, "summary")
        for item in record.update
    }
    assert summary["final/val/loss"] == pytest.approx(_last(run_dir, "val", "loss"))
    assert summary["train/loss"] == pytest.approx(_last(run_dir, "train", "loss"))
    assert summary["status"] == "completed"
    assert [e.exit_code for e in of(second_log, "exit")] == [0]
    assert not any((tmp_path / "home").iterdir()), "W&B wrote into HOME"


def test_mlflow_local_store_run_is_continued_on_resume(tracked_run: tuple[Path, dict[str, str]]) -> None:
    tmp_path, ids = tracked_run
    run_dir = tmp_path / "runs" / "t"
    record = json.loads(ids["mlflow.json"])
    assert json.loads((run_dir / "mlflow.json").read_text())["run_id"] == record["run_id"]
    uri = _mlflow_uri(tmp_path)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("vfp-tests")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [record["run_id"]]  # the resume did not start a second run
    tracked = runs[0]
    assert tracked.info.status == "FINISHED"
    assert tracked.info.run_name == "t"
    assert tracked.data.tags["team"] == "il"
    assert tracked.data.tags["vfp.status"] == "completed"
    assert tracked.data.params["optimizers.default.lr"] == "0.05"
    history = client.get_metric_history(record["run_id"], "train/loss")
    assert [m.step for m in history] == [5, 10, 15, 20]  # both sessions, one curve
    assert history[-1].value == pytest.approx(_last(run_dir, "train", "loss"))
    artifacts = {a.path for a in client.list_artifacts(record["run_id"])}
    assert {"config.yaml", "env.json", "final_evaluation.json"} <= artifacts
    final = client.download_artifacts(record["run_id"], "final_evaluation.json", str(tmp_path / "downloaded"))
    assert json.loads(Path(final).read_text())["val/loss"] == pytest.approx(_last(run_dir, "val", "loss"))


@dataclass
class _Run:
    """What the engine passes as ``run`` to lifecycle hooks (the fields these loggers read)."""

    run_dir: Path
    start_step: int = 0
    is_main: bool = True
    config: dict[str, Any] = field(default_factory=lambda: {"seed": 0, "optimizers": {"default": {"lr": 0.1}}})


@pytest.mark.parametrize("tracker", ["wandb", "mlflow"])
def test_an_unreachable_tracker_warns_once_and_training_goes_on(
    tracker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in _isolated_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    logger: Any
    if tracker == "wandb":
        from vfp.loggers_wandb import WandbLogger, WandbLoggerConfig

        logger = WandbLogger(WandbLoggerConfig(type="wandb", mode="online"))
    else:
        from vfp.loggers_mlflow import MlflowLogger, MlflowLoggerConfig

        logger = MlflowLogger(MlflowLoggerConfig(type="mlflow", tracking_uri="http://127.0.0.1:9"))
    run = _Run(tmp_path / "run")
    run.run_dir.mkdir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logger.vfp_on_train_start(run=run)
        for step in (1, 2, 3):
            logger.vfp_on_step_end(run=run, step=step, metrics={"loss": 1.0})
        logger.vfp_on_evaluation_end(run=run, step=3, metrics={"loss": 0.5})
        logger.vfp_on_train_end(run=run, status="completed")
    ours = [str(w.message) for w in caught if f"{tracker} logger" in str(w.message)]
    assert len(ours) == 1, ours
    assert f"{tracker} logger: start failed" in ours[0]
    assert not logger.active
