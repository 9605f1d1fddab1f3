"""Light registration module of the dataloader components (config models only, no torch import)."""

from __future__ import annotations

from vfp import ComponentSpec

SPECS: list[ComponentSpec] = []
