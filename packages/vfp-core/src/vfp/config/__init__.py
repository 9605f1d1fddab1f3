"""Experiment configs: safe YAML, composition, and validation against the installed plugins."""

from vfp.config._catalog import ConfigCatalog, PackagedConfig
from vfp.config._checks import component_use_issues, config_issue_at, missing_component_issue
from vfp.config._compose import apply_overrides, compose_file, resolve_config_argument
from vfp.config._errors import ConfigError, ConfigIssue
from vfp.config._schema import (
    BestCheckpointConfig,
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
    "BestCheckpointConfig",
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
    "component_use_issues",
    "compose_file",
    "config_issue_at",
    "experiment_json_schema",
    "experiment_model",
    "load_experiment",
    "missing_component_issue",
    "parse_yaml",
    "resolve_config_argument",
    "validate",
    "validate_data",
]
