"""vfp: a plugin framework for training imitation-learning policies.

This module is the author surface: everything a plugin's light module needs (component specs and
config bases, ``hookimpl``, the run description lifecycle hooks receive, the data protocols, errors,
the contract version). It imports no torch. Trainer-side types (``TrainerContext``, ``LossOutput``,
``EvaluationRequest``) live in the heavy :mod:`vfp.engine`. Modules whose name starts with an
underscore are private; ``PluginHost`` and ``get_host`` are vfp's own machinery (``vfp._plugins``).
``vfp.load_policy`` (deployment, :mod:`vfp.policy`) is imported on first use, so ``import vfp`` stays light.
"""

from __future__ import annotations

import warnings
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from vfp._plugins import CONTRACT_VERSION, SUPPORTED_CONTRACTS, ComponentLookupError, PluginError, PluginWarning
from vfp.components import (
    CallbackConfig,
    ComponentConfig,
    ComponentKind,
    ComponentSpec,
    ComponentUse,
    EnvConfig,
    LossConfig,
    Settings,
    TrainerConfig,
)
from vfp.hookspecs import hookimpl
from vfp.lifecycle import RunInfo, RunStatus
from vfp.protocols import (
    Batch,
    DataInfo,
    DataModule,
    FeatureInfo,
    NormalizationStats,
    OptimizerBundle,
    ParamGroups,
)

if TYPE_CHECKING:
    from vfp.policy import load_policy

try:
    __version__ = version("vfp-core")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

__all__ = [
    "CONTRACT_VERSION",
    "SUPPORTED_CONTRACTS",
    "Batch",
    "CallbackConfig",
    "ComponentConfig",
    "ComponentKind",
    "ComponentLookupError",
    "ComponentSpec",
    "ComponentUse",
    "DataInfo",
    "DataModule",
    "EnvConfig",
    "FeatureInfo",
    "LossConfig",
    "NormalizationStats",
    "OptimizerBundle",
    "ParamGroups",
    "PluginError",
    "PluginWarning",
    "RunInfo",
    "RunStatus",
    "Settings",
    "TrainerConfig",
    "__version__",
    "hookimpl",
    "load_policy",
]

# Host internals that contract 1.0 exported here: still reachable, with a DeprecationWarning.
_MOVED_TO_PLUGINS_MODULE = {
    "PluginHost": "vfp calls plugins itself; a test that needs a host builds one with vfp._plugins.PluginHost",
    "get_host": "vfp resolves its plugin host itself; internal code uses vfp._plugins.get_host",
    "PluginRecord": "`vfp plugins list --json` describes every plugin; internal code uses vfp._plugins.PluginRecord",
    "ComponentRegistry": "`vfp plugins list --json` lists the components; internal code uses vfp._plugins",
}


# Public names whose module imports torch: loaded on first access, so that ``import vfp`` stays light.
_HEAVY_ON_ACCESS = ("load_policy",)


def __getattr__(name: str) -> Any:
    """``load_policy`` (loaded on first use: it imports torch), and the 1.0 names of host internals."""
    if name == "load_policy":
        from vfp.policy import load_policy

        return load_policy
    replacement = _MOVED_TO_PLUGINS_MODULE.get(name)
    if replacement is None:
        raise AttributeError(f"module 'vfp' has no attribute {name!r}")
    warnings.warn(
        f"vfp.{name} is not part of the plugin author API since contract 1.1 and will be removed in 2.0: "
        f"{replacement} (internal: no compatibility promise)",
        DeprecationWarning,
        stacklevel=2,
    )
    from vfp import _plugins

    return getattr(_plugins, name)
