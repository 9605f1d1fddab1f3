"""Trained policies outside the run: ``load_policy``, ``Policy`` (``predict_chunk``, ``act``), export and serving.

``docs/deploying.md`` describes the control loop, ``vfp export`` and ``vfp serve``. Importing this
package is light; the names below load their (torch) modules on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from vfp.policy.export import export_policy
    from vfp.policy.loading import PolicyLoadError, load_policy
    from vfp.policy.metadata import FeatureSpec, PolicyMetadata
    from vfp.policy.runtime import ObservationError, Policy, PolicyError

__all__ = [
    "API_KEY_ENV",
    "FeatureSpec",
    "ObservationError",
    "Policy",
    "PolicyError",
    "PolicyLoadError",
    "PolicyMetadata",
    "export_policy",
    "load_policy",
]

API_KEY_ENV: Final = "VFP_SERVE_API_KEY"
"""Environment variable ``vfp serve`` reads its API key from (same as ``--api-key``)."""

_HOMES = {
    "export_policy": "vfp.policy.export",
    "PolicyLoadError": "vfp.policy.loading",
    "load_policy": "vfp.policy.loading",
    "FeatureSpec": "vfp.policy.metadata",
    "PolicyMetadata": "vfp.policy.metadata",
    "ObservationError": "vfp.policy.runtime",
    "Policy": "vfp.policy.runtime",
    "PolicyError": "vfp.policy.runtime",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'vfp.policy' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
