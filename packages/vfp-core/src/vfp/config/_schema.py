"""The experiment schema: fixed engine sections plus component sections whose tagged unions are
built at run time from the installed plugins."""

from __future__ import annotations

from functools import lru_cache
from types import GenericAlias
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, PrivateAttr, Tag, create_model

from vfp._plugins import ComponentRegistry
from vfp.components import ComponentConfig, ComponentKind, LossConfig, Settings
from vfp.config._yaml import KeyPath, LocatedData, Origin

InitScheme = Literal["default", "xavier_uniform", "xavier_normal", "kaiming_normal", "orthogonal", "zeros"]
DEFAULT_CALLBACKS = ("jsonl", "tensorboard")
MAX_SEED = 2**32 - 1
"""Largest seed: every generator the engine seeds (NumPy's legacy one included) accepts 0 .. 2^32 - 1."""


class StrictModel(Settings):
    """The engine's own sections: strict like every config block (unknown keys are errors)."""


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
    env: ComponentConfig | None = Field(
        None,
        description="Closed-loop evaluation: an env component ``{type: NAME, ...}`` the engine rolls the policy out "
        "in at every evaluation (see docs/environments.md; null: no rollouts by the engine).",
    )
    episodes: int = Field(50, ge=1, le=100_000, description="Episodes per closed-loop evaluation (with ``env``).")
    num_envs: int | None = Field(
        None, ge=1, le=4096, description="Environments stepped in parallel (null: all the episodes at once)."
    )
    max_episode_steps: int | None = Field(
        None, ge=1, description="Truncate episodes after this many steps (null: the env's own limit)."
    )
    action_steps: int | None = Field(
        None,
        ge=1,
        description="Actions of each predicted chunk executed before the policy is queried again "
        "(null: the trainer's ``evaluation.action_steps``, else the whole horizon).",
    )
    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="Seed of the evaluation episodes: every evaluation sees the same episodes."
    )


class BestCheckpointConfig(StrictModel):
    """Keep the best checkpoints by an evaluation metric (``checkpoints/best`` names the best one)."""

    metric: str = Field("success_rate", min_length=1, description="Evaluation metric that ranks the checkpoints.")
    mode: Literal["max", "min"] = Field("max", description="max: higher is better; min: lower is better.")
    keep: int = Field(3, ge=1, le=1000, description="How many of the best checkpoints to keep.")


class CheckpointingConfig(StrictModel):
    every: int = Field(1000, ge=0, description="Write a checkpoint every N steps (0: only at the end).")
    keep_last: int = Field(3, ge=1, description="How many step checkpoints to keep.")
    best: BestCheckpointConfig | None = Field(
        None,
        description="Also keep the top-k checkpoints by an evaluation metric, ``{metric: success_rate, mode: max, "
        "keep: 3}``; only checkpoints written at an evaluated step are ranked (null: off).",
    )


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
    """A vfp experiment. Component sections are ``{type: NAME, ...params}``.

    How files, ``extends`` and command-line overrides combine into one experiment is written down in
    docs/configs.md.
    """

    name: str | None = Field(
        None,
        description="Name of the run: the default run directory is runs/NAME-DATE-TIME (null: the config file's "
        "name without suffix).",
    )
    description: str = Field("", description="What this experiment is for; `vfp configs list` shows its first line.")
    seed: int = Field(
        0,
        ge=0,
        le=MAX_SEED,
        description="Seed of every random generator (Python, NumPy, torch, data order): 0 to 2^32 - 1.",
    )
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
        le=4096,
        description="CPU threads torch may use in each process during the run (torch.set_num_threads, restored "
        "afterwards; null: torch's default). Small policies on a shared or small machine often train fastest with 1.",
    )
    data: ComponentConfig = Field(description="The dataloader component: ``{type: NAME, ...}``.")
    model: dict[str, ModelComponentConfig] = Field(
        default_factory=dict,
        description="Named model components (backbone, prior, ...): the names the trainer builds. In an extending "
        "file, ``NAME: null`` deletes an inherited component.",
    )
    losses: dict[str, LossConfig] = Field(
        default_factory=dict,
        description="Named loss components: the names the trainer uses. In an extending file, ``NAME: null`` "
        "deletes an inherited loss.",
    )
    optimizers: dict[str, ComponentConfig] = Field(
        min_length=1,
        description="Named optimizers; each model component names the one that trains it (``default`` unless it "
        "says otherwise). In an extending file, ``NAME: null`` deletes an inherited optimizer.",
    )
    trainer: ComponentConfig = Field(description="The trainer component: ``{type: NAME, ...}``.")
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    checkpointing: CheckpointingConfig = Field(default_factory=CheckpointingConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)

    # Where each key was written (file and line), when the config was read from files.
    _origins: dict[KeyPath, Origin] = PrivateAttr(default_factory=dict)

    def origin_of(self, path: KeyPath, *, exact: bool = False) -> Origin | None:
        """Where the key at ``path`` was written (``exact=False``: or its nearest written ancestor).

        None when not known: a config validated from plain data (such as the one saved in a
        checkpoint) has no origins.
        """
        if exact:
            return self._origins.get(path)
        return LocatedData(None, self._origins).origin_of(path)


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
    env_field = EvaluationConfig.model_fields["env"]
    optional_env: Any = Union[unions[ComponentKind.ENV], None]  # noqa: UP007 - a run-time union needs Union[...]
    evaluation: Any = create_model(
        "EvaluationConfig",
        __base__=EvaluationConfig,
        env=(optional_env, Field(None, description=env_field.description)),
    )
    component: Any = create_model(
        "ModelComponentConfig", __base__=ModelComponentConfig, arch=(unions[ComponentKind.MODEL], ...)
    )
    described = {name: field.description for name, field in ExperimentConfig.model_fields.items()}
    fields = {
        "data": (unions[ComponentKind.DATALOADER], Field(description=described["data"])),
        "model": (
            GenericAlias(dict, (str, component)),
            Field(default_factory=dict, description=described["model"]),
        ),
        "losses": (
            GenericAlias(dict, (str, unions[ComponentKind.LOSS])),
            Field(default_factory=dict, description=described["losses"]),
        ),
        "optimizers": (
            GenericAlias(dict, (str, unions[ComponentKind.OPTIMIZER])),
            Field(min_length=1, description=described["optimizers"]),
        ),
        "trainer": (unions[ComponentKind.TRAINER], Field(description=described["trainer"])),
        "logging": (logging, Field(default_factory=logging)),
        "evaluation": (evaluation, Field(default_factory=evaluation)),
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
