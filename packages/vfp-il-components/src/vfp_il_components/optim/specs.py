"""Light registration module of the optimizer components (config models only, no torch import)."""

from __future__ import annotations

from vfp import ComponentSpec

SPECS: list[ComponentSpec] = []
