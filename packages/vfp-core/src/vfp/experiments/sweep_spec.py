"""The sweep spec: which experiment, which config keys to search over, the metric, trials, seeds, sampler.

::

    experiment: quickstart              # a packaged name or a YAML path (relative to this file)
    overrides: [training.max_steps=500] # fixed for every trial
    space:
      optimizers.default.lr: {type: log_uniform, low: 1e-4, high: 1e-2}
      training.grad_clip_norm: {type: uniform, low: 0.5, high: 2.0}
      data.batch_size: {type: int, low: 32, high: 128, step: 32}
      model.backbone.arch.hidden: {type: choice, values: [[128, 128], [256, 256]]}
    metric: val/loss                    # SPLIT/NAME as in `vfp runs compare`
    direction: minimize                 # default: by the metric's name (success rates are maximized)
    trials: 20
    seeds: [0, 1]                       # each trial trains one run per seed; its value is their mean
    sampler: tpe                        # grid | random | tpe
    pruner: median                      # none | median | hyperband (on the first seed's evaluations)
    output: runs/sweep-lr               # relative to this file; default: runs/sweep-SPECNAME (current folder)

Reading a spec imports no Optuna and no torch. Every key of ``space`` is checked against the experiment
(with the range's ends and every choice) before any trial starts: an unknown key is reported as
``spec.yaml:LINE: key.path: unknown key ...``, like ``vfp config validate`` does.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vfp.experiments._folder import better_is_higher

__all__ = ["SweepSpec", "load_spec"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Choice(_Strict):
    type: Literal["choice", "grid"]
    values: list[Any] = Field(min_length=1)

    def ends(self) -> list[Any]:
        return list(self.values)


class Uniform(_Strict):
    type: Literal["uniform", "log_uniform"]
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.type == "log_uniform" and self.low <= 0:
            raise ValueError("log_uniform needs low > 0")
        return self

    def ends(self) -> list[Any]:
        return [self.low, self.high]


class IntRange(_Strict):
    type: Literal["int"]
    low: int
    high: int
    step: int = Field(1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if not self.low <= self.high:
            raise ValueError(f"low ({self.low}) must not be above high ({self.high})")
        return self

    def ends(self) -> list[Any]:
        return [self.low, self.high]


Param = Annotated[Choice | Uniform | IntRange, Field(discriminator="type")]


class SweepSpec(_Strict):
    """A sweep: an experiment, a search space over its config keys, and how to search."""

    experiment: str = Field(description="Packaged experiment name or YAML path (relative to the spec file).")
    overrides: list[str] = Field(default_factory=list, description="KEY=VALUE overrides applied to every trial.")
    space: dict[str, Param] = Field(min_length=1, description="Config key (dotted) → its values or range.")
    metric: str = Field("val/loss", description="SPLIT/NAME of the metric to optimize.")
    direction: Literal["minimize", "maximize"] | None = None
    statistic: Literal["last", "best", "last3"] = Field(
        "last", description="Each run's value: its last evaluation, its best, or the mean of its last three."
    )
    trials: int = Field(ge=1, description="Number of trials (a retried trial counts once).")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    sampler: Literal["grid", "random", "tpe"] = "tpe"
    sampler_seed: int | None = 0
    pruner: Literal["none", "median", "hyperband"] = "none"
    pruner_startup_trials: int = Field(2, ge=0, description="Trials that complete before the median pruner acts.")
    output: str | None = None
    name: str | None = Field(None, description="Optuna study name (default: the spec file's stem).")

    @model_validator(mode="after")
    def _grid_needs_choices(self) -> SweepSpec:
        if self.sampler == "grid":
            ranges = [key for key, p in self.space.items() if not isinstance(p, Choice)]
            if ranges:
                raise ValueError(f"sampler grid needs a list of values for every key; {ranges[0]} is a range")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds: a seed is given twice")
        return self

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize" if self.direction else better_is_higher(self.metric)

    def grid_size(self) -> int:
        return math.prod(len(p.values) for p in self.space.values() if isinstance(p, Choice))


class LoadedSpec:
    """A validated spec with the places it refers to resolved."""

    def __init__(self, spec: SweepSpec, file: Path, experiment: str, output: Path) -> None:
        self.spec = spec
        self.file = file
        self.experiment = experiment
        """A packaged name, or an absolute YAML path."""
        self.output = output
        self.study_name = spec.name or file.stem

    @property
    def journal(self) -> Path:
        return self.output / "study.journal"


def _issue_lines(file: Path, located: Any, exc: ValidationError) -> list[Any]:
    from vfp.config._errors import ConfigIssue

    issues = []
    for error in exc.errors():
        path = tuple(str(p) for p in error["loc"] if not (isinstance(p, str) and p in ("choice", "grid")))
        path = tuple(p for p in path if p not in ("uniform", "log_uniform", "int"))
        origin = located.origin_of(path)
        message = error["msg"] if error["type"] != "extra_forbidden" else f"unknown key '{path[-1]}'"
        issues.append(ConfigIssue(str(file), origin.line if origin else None, ".".join(path) or None, message))
    return issues


def load_spec(file: Path) -> LoadedSpec:
    """Read and validate a spec file and every config key it searches over; ``ConfigError`` with file:line."""
    from vfp.config import ConfigError, load_experiment
    from vfp.config._errors import ConfigIssue
    from vfp.config._yaml import load_yaml_file

    located = load_yaml_file(file)
    if not isinstance(located.data, dict):
        raise ConfigError([ConfigIssue(str(file), 1, None, "a sweep spec is a mapping (experiment, space, ...)")])
    try:
        spec = SweepSpec.model_validate(located.data)
    except ValidationError as exc:
        raise ConfigError(_issue_lines(file, located, exc)) from None
    candidate = (file.parent / spec.experiment).resolve()
    experiment = (
        str(candidate) if spec.experiment.endswith((".yaml", ".yml")) or candidate.is_file() else spec.experiment
    )
    output = (file.parent / spec.output).resolve() if spec.output else Path("runs", f"sweep-{file.stem}").resolve()
    issues: list[ConfigIssue] = []
    firsts = {key: param.ends()[0] for key, param in spec.space.items()}
    line_of = {key: (located.origin_of(("space", key)) or None) for key in spec.space}
    tried: set[tuple[str, str]] = set()
    for key, param in spec.space.items():
        for value in param.ends():
            values = {**firsts, key: value}
            overrides = [f"{k}={_yaml_value(v)}" for k, v in values.items()]
            if (key, overrides[list(values).index(key)]) in tried:
                continue
            tried.add((key, overrides[list(values).index(key)]))
            try:
                load_experiment(experiment, [*spec.overrides, *overrides])
            except ConfigError as exc:
                issues.extend(_to_spec_lines(exc, file, spec.space, line_of, overrides, list(values)))
    if issues:
        unique = list(dict.fromkeys(issues))
        raise ConfigError(unique)
    return LoadedSpec(spec, file, experiment, output)


def _yaml_value(value: Any) -> str:
    import json

    return json.dumps(value) if not isinstance(value, str) else value


def _to_spec_lines(
    exc: Any, file: Path, space: dict[str, Any], line_of: dict[str, Any], overrides: list[str], keys: list[str]
) -> list[Any]:
    """Problems caused by a search key are reported at that key's line in the spec."""
    from vfp.config._errors import ConfigIssue

    remapped = []
    for issue in exc.issues:
        key = None
        for override, candidate in zip(overrides, keys, strict=True):
            if issue.file == f"<command line override {override!r}>":
                key = candidate
        if key is None and issue.path:
            key = next((k for k in space if k == issue.path or k.startswith(issue.path + ".")), None)
        if key is None:
            remapped.append(issue)
            continue
        origin = line_of.get(key)
        message = issue.message
        remapped.append(ConfigIssue(str(file), origin.line if origin else None, issue.path or key, message))
    return remapped
