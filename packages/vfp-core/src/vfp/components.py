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
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from vfp.config import ExperimentConfig

__all__ = [
    "COMPONENT_NAME_PATTERN",
    "CallbackConfig",
    "ComponentConfig",
    "ComponentKind",
    "ComponentSpec",
    "ComponentUse",
    "EnvConfig",
    "LossConfig",
    "Settings",
    "TrainerConfig",
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
    ENV = "env"


# defer_build: validators are built on first use, so importing many plugins' config models
# (which `vfp plugins list` must do) stays cheap.
_STRICT = ConfigDict(extra="forbid", validate_assignment=True, defer_build=True)


class Settings(BaseModel):
    """Base of a nested section inside a component's config (``flow: {...}`` in a trainer's).

    Strict like :class:`ComponentConfig` (an unknown key is an error that names the file and line,
    assignments are validated) but without a ``type``: a settings block is part of its component,
    not a component of its own::

        class ScheduleSettings(vfp.Settings):
            start: float = 0.0
            end: float = 1.0

        class MyTrainerConfig(vfp.TrainerConfig):
            schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    """

    model_config = _STRICT


class ComponentConfig(BaseModel):
    """Base of every component's config model: unknown keys are errors, never dropped.

    A plugin subclasses this (or the kind's own base: :class:`TrainerConfig`, :class:`LossConfig`,
    :class:`CallbackConfig`) without a ``type`` field; vfp adds ``type: Literal[name]`` when it
    builds the tagged unions from the installed components. Nested sections subclass
    :class:`Settings`. The module that defines a config model must not import torch: listing
    plugins and ``vfp config validate`` import it.
    """

    model_config = _STRICT

    type: str = Field(description="Registered name of the component.")

    def cross_check(self, experiment: Any) -> Iterable[tuple[str, str]]:
        """Check this section against the rest of the experiment; runs in ``validate`` and before training.

        ``experiment`` is the validated :class:`vfp.config.ExperimentConfig` (every section already
        valid on its own, defaults filled in). Yield ``(key, message)`` pairs: ``key`` is a dotted
        path relative to this section (``"warmup_steps"``, ``"flow.num_steps"``; ``""`` for the
        section itself) and each pair becomes a config error that names the file and line where that
        key was written and its full key path (``losses.flow.warmup_steps``). The message says what
        is wrong and what to write instead. The default checks nothing.

        It runs without data and without torch, so it may look only at configs. An exception it
        raises is reported as a config error of this section rather than taking validation down.
        """
        return ()


@dataclass(frozen=True)
class ComponentUse:
    """Which named model components and losses a trainer builds, for one experiment.

    ``models`` are keys of the experiment's ``model`` section (what the trainer passes to
    ``context.build_model``), ``losses`` keys of ``losses`` (``context.build_loss``).
    """

    models: frozenset[str] = frozenset()
    losses: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # Accept any iterable of names (a set or a list) while keeping the value hashable.
        object.__setattr__(self, "models", frozenset(self.models))
        object.__setattr__(self, "losses", frozenset(self.losses))


class TrainerConfig(ComponentConfig):
    """Base of the config models of ``trainer`` components (contract 1.1).

    A 1.0 trainer config that subclasses :class:`ComponentConfig` directly keeps working; subclassing
    this base lets ``vfp config validate`` check what ``vfp train`` would check when it builds the
    trainer: override :meth:`component_use`.
    """

    def component_use(self, experiment: ExperimentConfig) -> ComponentUse | None:
        """The model components and losses this trainer builds for ``experiment``; None: not declared.

        Return exactly the names the trainer's implementation passes to ``context.build_model`` and
        ``context.build_loss`` for this config and experiment (an optional loss the trainer uses only
        when the experiment defines it belongs in ``losses`` only when ``experiment.losses`` has it).
        ``vfp config validate`` then reports, with the file and line where each key was written,
        every entry of ``model``/``losses`` the trainer does not use and every name it uses that the
        experiment does not define: the same errors, with the same messages, as ``vfp train``
        reports after building the trainer. It runs without data and without torch.

        The default, None, declares nothing: those checks then run only when the trainer is built.
        """
        return None


class CallbackConfig(ComponentConfig):
    """Base of the config models of ``callback`` components (loggers and other lifecycle listeners).

    An entry of ``logging.callbacks: [{type: NAME, ...}]``. The implementation registered as the
    callback's ``target`` is called with this config and returns an object with ``vfp_*`` lifecycle
    hook implementations (see ``vfp.hookspecs``). A 1.0 callback config that subclasses
    :class:`ComponentConfig` directly keeps working.
    """


class LossConfig(ComponentConfig):
    """Base of the config models of ``loss`` components: every loss term carries a weight.

    The implementation (the spec's ``target``) is called as ``target(config)`` and returns a
    ``torch.nn.Module``. The engine never calls a loss itself: the trainer that builds it with
    ``context.build_loss(name)`` does, so the call signature is a contract between a loss and the
    trainers that use it. The built-in flow-matching trainers of vfp-il-components call the loss
    named ``flow`` as ``loss(pred, target, is_pad)``: ``pred`` and ``target`` of shape ``(B, H, A)``
    (a batch of action chunks), ``is_pad`` a ``(B, H)`` bool tensor (True marks a padded step, left
    out of the loss) or None, returning a scalar tensor. A loss applies its own ``weight`` and
    returns the weighted term.
    """

    weight: float = Field(default=1.0, ge=0.0, description="Factor applied to this loss term.")


class EnvConfig(ComponentConfig):
    """Base of the config models of ``env`` components (closed-loop evaluation environments, contract 1.1).

    The implementation registered as the env's ``target`` is called as
    ``target(config, *, num_envs, seed, render_mode=None)`` and returns a ``gymnasium.vector.VectorEnv``
    whose single observation space is a ``gymnasium.spaces.Dict`` keyed by the dataset's feature names
    (``observation.state``, ``observation.images.<cam>`` as uint8 ``H, W, C``) and whose action space
    is a ``Box`` in the dataset's (unnormalized) action units. Success is ``infos["success"]`` (or
    ``infos["is_success"]``); an env that knows its modes has ``mode_names``/``mode_weights`` and
    reports ``infos["mode"]``. docs/environments.md has the whole contract.
    """

    max_episode_steps: int | None = Field(
        None,
        ge=1,
        description="Steps after which an episode is truncated (null: the env's own default). "
        "`evaluation.max_episode_steps` overrides it.",
    )


@dataclass(frozen=True)
class ComponentSpec:
    """One component a plugin provides.

    ``config`` is the component's config model, a subclass of :class:`ComponentConfig`: of
    :class:`LossConfig` for a loss (required), preferably of :class:`TrainerConfig` for a trainer
    and of :class:`CallbackConfig` for a callback (a plain :class:`ComponentConfig` is accepted
    there, as in contract 1.0). ``target`` is a lazy ``"package.module:attribute"`` reference to
    the implementation; it is imported only when the component is built, so discovery stays cheap.
    It is written by the plugin author in Python, never read from YAML.
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
        for base, kind in (
            (TrainerConfig, ComponentKind.TRAINER),
            (CallbackConfig, ComponentKind.CALLBACK),
            (EnvConfig, ComponentKind.ENV),
        ):
            if issubclass(self.config, base) and self.kind is not kind:
                raise TypeError(
                    f"{self.kind} {self.name!r}: config {self.config.__name__} subclasses vfp.{base.__name__}, "
                    f"the base of {kind} configs; register it as a {kind} or subclass vfp.ComponentConfig"
                )
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
