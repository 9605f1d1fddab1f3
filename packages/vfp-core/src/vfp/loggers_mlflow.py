"""The ``mlflow`` callback: metrics, the resolved config (as params and as config.yaml) and env.json to MLflow.

::

    logging:
      callbacks:
        - {type: jsonl}
        - {type: mlflow, tracking_uri: file:///data/mlruns, experiment: avoid-obstacle, tags: {team: il}}

The MLflow run id is kept in ``RUN/mlflow.json``: ``vfp train --resume RUN`` continues the same MLflow
run. ``tracking_uri`` null uses MLflow's own default (``MLFLOW_TRACKING_URI``, else its local store).
If the tracking server cannot be reached, the logger warns once and training goes on.
Needs the ``mlflow`` extra: ``pip install 'vfp-core[mlflow]'``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from vfp.components import ComponentConfig
from vfp.experiments._folder import flatten
from vfp.loggers_tracking import TrackedRun, TrackerLogger, environment, read_run_id, resolved_config, write_run_id

RUN_ID_FILE = "mlflow.json"
_BATCH = 100  # MLflow's limit of params per log_batch call
_MAX_PARAM_LENGTH = 6000
_STATUS = {"completed": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}


class MlflowLoggerConfig(ComponentConfig):
    """Log to MLflow (the ``mlflow`` extra)."""

    tracking_uri: str | None = Field(
        None,
        description="Tracking URI: file:///path, http://server:5000, sqlite:///mlflow.db (null: MLflow's default).",
    )
    experiment: str | None = Field(None, description="MLflow experiment (null: the vfp experiment's name).")
    run_name: str | None = Field(None, description="MLflow run name (null: the run folder's name).")
    tags: dict[str, str] = Field(default_factory=dict, description="Tags of the MLflow run.")


class MlflowLogger(TrackerLogger):
    """One MLflow run per vfp run; metrics as ``train/*`` and ``val/*`` at the training step."""

    tracker = "mlflow"
    extra = "mlflow"

    def __init__(self, config: MlflowLoggerConfig) -> None:
        super().__init__()
        self.client_type: Any = self.require("mlflow.tracking").MlflowClient
        self.config = config
        self.client: Any = None

    @property
    def run_id(self) -> str | None:
        """The MLflow run's id once started."""
        return self.handle  # type: ignore[no-any-return]

    def _start(self, run: TrackedRun) -> str:
        from mlflow.entities import Param

        self.client = self.client_type(tracking_uri=self.config.tracking_uri)
        record_file = run.run_dir / RUN_ID_FILE
        record = read_run_id(record_file) if run.start_step > 0 else None
        config = resolved_config(run)
        if record and isinstance(record.get("run_id"), str):
            run_id: str = record["run_id"]
            self.client.update_run(run_id, status="RUNNING")
        else:
            name = self.config.experiment or _experiment_name(run, config)
            experiment = self.client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
            tags = {"vfp.run_dir": str(run.run_dir.resolve()), **self.config.tags}
            created = self.client.create_run(
                experiment_id, tags=tags, run_name=self.config.run_name or run.run_dir.name
            )
            run_id = created.info.run_id
            params = [
                Param(key, str(value)[:_MAX_PARAM_LENGTH]) for key, value in flatten(config).items() if key != "env"
            ]
            for start in range(0, len(params), _BATCH):
                self.client.log_batch(run_id, params=params[start : start + _BATCH])
            write_run_id(record_file, {"run_id": run_id, "experiment_id": experiment_id, "tracking_uri": self.uri})
        self.client.log_dict(run_id, config, "config.yaml")
        self.client.log_dict(run_id, environment(run), "env.json")
        return run_id

    @property
    def uri(self) -> str | None:
        return str(self.client.tracking_uri) if self.client is not None else self.config.tracking_uri

    def _log(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, value, now, step) for key, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def _finish(self, status: str) -> None:
        if self.last_evaluation:
            self.client.log_dict(self.run_id, self.last_evaluation, "final_evaluation.json")
        self.client.set_tag(self.run_id, "vfp.status", status)
        self.client.set_terminated(self.run_id, status=_STATUS.get(status, "FAILED"))


def _experiment_name(run: TrackedRun, config: Mapping[str, Any]) -> str:
    name = config.get("name")
    if isinstance(name, str) and name:
        return name
    experiment = getattr(run, "experiment", None)  # RunInfo of contract 1.1
    if isinstance(experiment, str) and experiment:
        return experiment
    source = environment(run).get("config_source")
    return Path(source).stem if isinstance(source, str) and source else "vfp"
