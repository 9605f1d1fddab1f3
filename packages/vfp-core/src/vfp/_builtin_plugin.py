"""vfp-core's own plugin: the built-in JSONL and TensorBoard loggers, registered like any other."""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath

from pydantic import Field, field_validator

from vfp.components import ComponentConfig, ComponentKind, ComponentSpec
from vfp.hookspecs import hookimpl
from vfp.loggers_mlflow import MlflowLoggerConfig
from vfp.loggers_wandb import WandbLoggerConfig

VFP_CONTRACT = "1.1"


def inside_run_dir(value: str, *, what: str) -> str:
    """Check that a path from a config stays inside the run directory (relative, no escaping ``..``)."""
    if PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute() or PureWindowsPath(value).drive:
        raise ValueError(f"{what} must be a path inside the run directory, not an absolute path ({value!r})")
    depth = 0
    for part in PurePosixPath(value.replace("\\", "/")).parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            raise ValueError(f"{what} must stay inside the run directory; {value!r} leaves it through '..'")
    if depth == 0:
        raise ValueError(f"{what} must name something inside the run directory, not the directory itself ({value!r})")
    return value


class JsonlLoggerConfig(ComponentConfig):
    """Append one JSON object per logged step to ``metrics.jsonl`` in the run directory."""

    filename: str = Field("metrics.jsonl", min_length=1)
    """A path relative to the run directory (absolute paths and ``..`` leaving it are refused)."""

    @field_validator("filename")
    @classmethod
    def _inside(cls, value: str) -> str:
        return inside_run_dir(value, what="filename")


class TensorBoardLoggerConfig(ComponentConfig):
    """Write TensorBoard event files under the run directory."""

    subdir: str = Field("tensorboard", min_length=1)
    """A folder relative to the run directory (absolute paths and ``..`` leaving it are refused)."""

    @field_validator("subdir")
    @classmethod
    def _inside(cls, value: str) -> str:
        return inside_run_dir(value, what="subdir")


@hookimpl
def vfp_register_components() -> list[ComponentSpec]:
    return [
        ComponentSpec(
            ComponentKind.CALLBACK, "jsonl", JsonlLoggerConfig, "vfp.loggers:JsonlLogger", "metrics.jsonl logger"
        ),
        ComponentSpec(
            ComponentKind.CALLBACK,
            "tensorboard",
            TensorBoardLoggerConfig,
            "vfp.loggers:TensorBoardLogger",
            "TensorBoard event-file logger",
        ),
        ComponentSpec(
            ComponentKind.CALLBACK,
            "wandb",
            WandbLoggerConfig,
            "vfp.loggers_wandb:WandbLogger",
            "Weights & Biases logger",
        ),
        ComponentSpec(
            ComponentKind.CALLBACK, "mlflow", MlflowLoggerConfig, "vfp.loggers_mlflow:MlflowLogger", "MLflow logger"
        ),
    ]
