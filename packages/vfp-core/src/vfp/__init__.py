"""vfp: a plugin framework for training imitation-learning policies.

The public surface a plugin author needs is re-exported here; everything in modules whose name
starts with an underscore is private.
"""

from importlib.metadata import PackageNotFoundError, version

from vfp._plugins import (
    CONTRACT_VERSION,
    ComponentLookupError,
    ComponentRegistry,
    PluginError,
    PluginHost,
    PluginRecord,
    PluginWarning,
    get_host,
)
from vfp.components import ComponentConfig, ComponentKind, ComponentSpec, LossConfig
from vfp.hookspecs import hookimpl

try:
    __version__ = version("vfp-core")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

__all__ = [
    "CONTRACT_VERSION",
    "ComponentConfig",
    "ComponentKind",
    "ComponentLookupError",
    "ComponentRegistry",
    "ComponentSpec",
    "LossConfig",
    "PluginError",
    "PluginHost",
    "PluginRecord",
    "PluginWarning",
    "__version__",
    "get_host",
    "hookimpl",
]
