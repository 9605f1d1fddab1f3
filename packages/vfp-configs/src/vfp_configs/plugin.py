"""Contributes the packaged config folder through the public ``vfp_config_dirs`` hook."""

from __future__ import annotations

from pathlib import Path

import pluggy

VFP_CONTRACT = "1.1"
hookimpl = pluggy.HookimplMarker("vfp")


@hookimpl
def vfp_config_dirs() -> list[Path]:
    return [Path(__file__).parent / "configs"]
