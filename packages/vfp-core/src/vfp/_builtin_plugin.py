"""vfp-core's own plugin: the built-in JSONL and TensorBoard loggers, registered like any other."""

from __future__ import annotations

from pydantic import Field

from vfp.components import ComponentConfig, ComponentKind, ComponentSpec
from vfp.hookspecs import hookimpl

VFP_CONTRACT = "1.0"


class JsonlLoggerConfig(ComponentConfig):
    """Append one JSON object per logged step to ``metrics.jsonl`` in the run directory."""

    filename: str = Field("metrics.jsonl", min_length=1)


class TensorBoardLoggerConfig(ComponentConfig):
    """Write TensorBoard event files under the run directory."""

    subdir: str = Field("tensorboard", min_length=1)


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
    ]
