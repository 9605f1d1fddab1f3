"""Experiment configs: safe YAML, composition, and validation against the installed plugins."""

from vfp.config._catalog import ConfigCatalog, PackagedConfig
from vfp.config._compose import apply_overrides, compose_file, resolve_config_argument
from vfp.config._errors import ConfigError, ConfigIssue
from vfp.config._schema import (
    CheckpointingConfig,
    DistributedConfig,
    EmaConfig,
    EvaluationConfig,
    ExperimentConfig,
    LoggingConfig,
    ModelComponentConfig,
    TrainingConfig,
    experiment_json_schema,
    experiment_model,
)
from vfp.config._validate import LoadedConfig, load_experiment, validate, validate_data
from vfp.config._yaml import LocatedData, Origin, parse_yaml

__all__ = [
    "CheckpointingConfig",
    "ConfigCatalog",
    "ConfigError",
    "ConfigIssue",
    "DistributedConfig",
    "EmaConfig",
    "EvaluationConfig",
    "ExperimentConfig",
    "LoadedConfig",
    "LocatedData",
    "LoggingConfig",
    "ModelComponentConfig",
    "Origin",
    "PackagedConfig",
    "TrainingConfig",
    "apply_overrides",
    "compose_file",
    "experiment_json_schema",
    "experiment_model",
    "load_experiment",
    "parse_yaml",
    "resolve_config_argument",
    "validate",
    "validate_data",
]
