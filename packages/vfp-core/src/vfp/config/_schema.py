"""The experiment schema: fixed engine sections plus component sections whose tagged unions are
built at run time from the installed plugins."""

from __future__ import annotations

from functools import lru_cache
from types import GenericAlias
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, create_model

from vfp._plugins import ComponentRegistry
from vfp.components import ComponentConfig, ComponentKind, LossConfig

InitScheme = Literal["default", "xavier_uniform", "xavier_normal", "kaiming_normal", "orthogonal", "zeros"]
DEFAULT_CALLBACKS = ("jsonl", "tensorboard")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelComponentConfig(StrictModel):
    """One named part of the model (backbone, posterior, prior, gate, action_decoder, ...)."""

    arch: ComponentConfig = Field(
        description="Architecture: a ``{type: NAME, ...}`` mapping, a path to a YAML file, or a packaged model name."
    )
    init: InitScheme = Field(
        "default", description="Weight initialisation scheme applied after the component is built."
    )
    init_from: str | None = Field(
        None, description="Checkpoint file or run directory whose weights for this component are loaded after init."
    )
    freeze: bool = Field(False, description="Keep this component's parameters fixed (no gradients, no optimizer).")
    optimizer: str = Field("default", description="Name of the entry in ``optimizers`` that trains this component.")


class EmaConfig(StrictModel):
    enabled: bool = Field(
        False,
        description="Keep an exponential moving average of the weights; evaluation and checkpoints' policy use it.",
    )
    decay: float = Field(0.999, gt=0.0, lt=1.0)
    start_step: int = Field(
        0, ge=0, description="Steps before the average starts (the average is a copy of the weights until then)."
    )


class TrainingConfig(StrictModel):
    max_steps: int = Field(
        1000, ge=1, description="Total number of optimizer steps; resuming with a larger value extends the run."
    )
    grad_accum_steps: int = Field(1, ge=1, description="Micro-batches accumulated per optimizer step.")
    grad_clip_norm: float | None = Field(
        1.0, gt=0.0, description="Clip the global gradient norm to this value (null disables clipping)."
    )
    ema: EmaConfig = Field(default_factory=EmaConfig)


class EvaluationConfig(StrictModel):
    every: int = Field(500, ge=0, description="Evaluate on the held-out split every N steps (0: only at the end).")
    max_batches: int | None = Field(
        None, ge=1, description="Limit the number of validation batches (null: the whole split)."
    )


class CheckpointingConfig(StrictModel):
    every: int = Field(1000, ge=0, description="Write a checkpoint every N steps (0: only at the end).")
    keep_last: int = Field(3, ge=1, description="How many step checkpoints to keep.")


class DistributedConfig(StrictModel):
    backend: Literal["auto", "nccl", "gloo"] = Field(
        "auto", description="Process-group backend under torchrun: auto picks nccl on CUDA and gloo on CPU."
    )
    find_unused_parameters: bool = False


class LoggingConfig(StrictModel):
    every: int = Field(10, ge=1, description="Log training metrics every N steps.")
    callbacks: list[ComponentConfig] = Field(
        default_factory=list,
        description="Callback components (loggers): ``[{type: jsonl}, {type: tensorboard}, ...]``.",
    )


class ExperimentConfig(StrictModel):
    """A vfp experiment. Component sections are ``{type: NAME, ...params}``."""

    name: str | None = None
    description: str = ""
    seed: int = 0
    deterministic: bool = Field(
        False, description="Ask torch for deterministic algorithms (slower; bit-identical reruns on the same machine)."
    )
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$", description="auto, cpu, cuda, cuda:N or mps.")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="fp32, or autocast in bf16/fp16 on the run's device."
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads torch may use per process (null: torch's default). Small policies on a "
        "shared or small machine often train fastest with 1.",
    )
    data: ComponentConfig
    model: dict[str, ModelComponentConfig] = Field(default_factory=dict)
    losses: dict[str, LossConfig] = Field(default_factory=dict)
    optimizers: dict[str, ComponentConfig] = Field(min_length=1)
    trainer: ComponentConfig
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    checkpointing: CheckpointingConfig = Field(default_factory=CheckpointingConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)


def _type_of(value: Any) -> str | None:
    if isinstance(value, dict):
        tag = value.get("type")
        return tag if isinstance(tag, str) else None
    tag = getattr(value, "type", None)
    return tag if isinstance(tag, str) else None


class _NoneInstalled(ComponentConfig):
    """Placeholder member of a union for a kind with no installed component."""

    type: Literal["\x00none"]


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def component_union(registry: ComponentRegistry, kind: ComponentKind) -> Any:
    """``Annotated[Union[...], Discriminator]`` over the installed components of one kind."""
    members: list[Any] = []
    for spec in registry.specs(kind):
        type_field: Any = (Literal[spec.name], Field(description=f"{kind} component from {spec.distribution}"))
        tagged = create_model(
            f"{_camel(spec.name)}{_camel(kind.value)}Config",
            __base__=spec.config,
            __module__=spec.config.__module__,
            __doc__=spec.description or spec.config.__doc__,
            type=type_field,
        )
        members.append(Annotated[tagged, Tag(spec.name)])
    if not members:
        members.append(Annotated[_NoneInstalled, Tag("\x00none")])
    return Annotated[
        Union[tuple(members)],  # noqa: UP007 - a run-time tuple of members needs Union[...]
        Discriminator(_type_of, custom_error_type=f"vfp_unknown_{kind.value}", custom_error_message="unknown type"),
    ]


@lru_cache(maxsize=8)
def _build(registry_id: int, registry: ComponentRegistry) -> type[ExperimentConfig]:
    # Field types are built at run time, so they are plain ``Any`` values to the type checker.
    unions: dict[ComponentKind, Any] = {kind: component_union(registry, kind) for kind in ComponentKind}
    installed_callbacks = set(registry.names(ComponentKind.CALLBACK))
    default_callbacks = [{"type": name} for name in DEFAULT_CALLBACKS if name in installed_callbacks]
    fields: dict[str, Any] = {
        "callbacks": (
            GenericAlias(list, (unions[ComponentKind.CALLBACK],)),
            Field(default_factory=lambda: list(default_callbacks), validate_default=True),
        )
    }
    logging: Any = create_model("LoggingConfig", __base__=LoggingConfig, **fields)
    component: Any = create_model(
        "ModelComponentConfig", __base__=ModelComponentConfig, arch=(unions[ComponentKind.MODEL], ...)
    )
    fields = {
        "data": (unions[ComponentKind.DATALOADER], ...),
        "model": (GenericAlias(dict, (str, component)), Field(default_factory=dict)),
        "losses": (GenericAlias(dict, (str, unions[ComponentKind.LOSS])), Field(default_factory=dict)),
        "optimizers": (GenericAlias(dict, (str, unions[ComponentKind.OPTIMIZER])), Field(min_length=1)),
        "trainer": (unions[ComponentKind.TRAINER], ...),
        "logging": (logging, Field(default_factory=logging)),
    }
    return create_model("ExperimentConfig", __base__=ExperimentConfig, **fields)


def experiment_model(registry: ComponentRegistry) -> type[ExperimentConfig]:
    """The experiment model for the installed components (cached per registry)."""
    return _build(id(registry), registry)


def experiment_json_schema(registry: ComponentRegistry) -> dict[str, Any]:
    schema = experiment_model(registry).model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "vfp experiment"
    properties = schema.setdefault("properties", {})
    properties["extends"] = {
        "description": "Config(s) this one extends: a path relative to this file or a packaged name.",
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
    }
    for definition in schema.get("$defs", {}).values():
        arch = definition.get("properties", {}).get("arch")
        if definition.get("title") == "ModelComponentConfig" and arch is not None:
            definition["properties"]["arch"] = {
                "anyOf": [arch, {"type": "string"}],
                "description": arch.get("description", ""),
            }
    return schema
