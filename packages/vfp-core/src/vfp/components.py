"""What a plugin registers: component specs and the base classes of their config models.

This module is light on purpose (pydantic only, no torch): listing plugins and validating
configs import it, and only building a component imports its implementation.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "COMPONENT_NAME_PATTERN",
    "ComponentConfig",
    "ComponentKind",
    "ComponentSpec",
    "LossConfig",
]

COMPONENT_NAME_PATTERN: Final = re.compile(r"^[a-z][a-z0-9_]*$")


class ComponentKind(StrEnum):
    """The kinds of component a plugin can register."""

    DATALOADER = "dataloader"
    LOSS = "loss"
    OPTIMIZER = "optimizer"
    TRAINER = "trainer"
    MODEL = "model"
    CALLBACK = "callback"


class ComponentConfig(BaseModel):
    """Base of every component's config model: unknown keys are errors, never dropped.

    A plugin subclasses this without a ``type`` field; vfp adds ``type: Literal[name]`` when it
    builds the tagged unions from the installed components.
    """

    # defer_build: validators are built on first use, so importing many plugins' config models
    # (which `vfp plugins list` must do) stays cheap.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, defer_build=True)

    type: str = Field(description="Registered name of the component.")

    def cross_check(self, experiment: Any) -> Iterable[tuple[str, str]]:
        """Check this section against the rest of the experiment (an ``ExperimentConfig``).

        Yield ``(key, message)`` pairs, ``key`` relative to this section (``"warmup_steps"``); each
        becomes a config error naming the file, line and full key path. The default checks nothing.
        """
        return ()


class LossConfig(ComponentConfig):
    """Base of the config models of ``loss`` components: every loss term carries a weight."""

    weight: float = Field(default=1.0, ge=0.0, description="Factor applied to this loss term.")


@dataclass(frozen=True)
class ComponentSpec:
    """One component a plugin provides.

    ``target`` is a lazy ``"package.module:attribute"`` reference to the implementation; it is
    imported only when the component is built, so discovery stays cheap. It is written by the plugin
    author in Python, never read from YAML.
    """

    kind: ComponentKind
    name: str
    config: type[ComponentConfig]
    target: str
    description: str = ""
    plugin: str = field(default="", compare=False)
    distribution: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ComponentKind(self.kind))
        if not COMPONENT_NAME_PATTERN.match(self.name):
            raise ValueError(
                f"component name {self.name!r} is not valid: use lowercase letters, digits and '_', "
                "starting with a letter"
            )
        if not (isinstance(self.config, type) and issubclass(self.config, ComponentConfig)):
            raise TypeError(
                f"{self.kind} {self.name!r}: config must be a subclass of vfp.ComponentConfig, got {self.config!r}"
            )
        if self.kind is ComponentKind.LOSS and not issubclass(self.config, LossConfig):
            raise TypeError(f"loss {self.name!r}: config must be a subclass of vfp.LossConfig")
        module, sep, attribute = self.target.partition(":")
        if not (module and sep and attribute):
            raise ValueError(
                f"{self.kind} {self.name!r}: target must look like 'package.module:attribute', got {self.target!r}"
            )

    @property
    def origin(self) -> str:
        """Who provides this component, for messages: ``distribution (plugin)``."""
        return f"{self.distribution or '?'} (plugin {self.plugin or '?'})"

    def load(self) -> Any:
        """Import and return the implementation (the heavy part of a component)."""
        module_name, _, attribute = self.target.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
        return obj
