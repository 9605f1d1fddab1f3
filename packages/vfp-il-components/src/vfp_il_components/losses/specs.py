"""Light registration module of the loss components (config models only, no torch import)."""

from __future__ import annotations

from vfp import ComponentSpec

SPECS: list[ComponentSpec] = []
