"""The vfp-il-components plugin: registers its components through the public hooks.

Each area keeps a light ``specs`` module (config models and ComponentSpecs, no torch import);
implementations are imported only when a component is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import vfp
from vfp import ComponentSpec

if TYPE_CHECKING:
    import typer

VFP_CONTRACT = "1.0"


@vfp.hookimpl
def vfp_register_components() -> list[ComponentSpec]:
    from vfp_il_components.data import specs as data
    from vfp_il_components.losses import specs as losses
    from vfp_il_components.models import specs as models
    from vfp_il_components.optim import specs as optim
    from vfp_il_components.trainers import specs as trainers
    from vfp_il_components.trainers import specs_vq_mi as trainers_vq_mi

    return [*data.SPECS, *losses.SPECS, *models.SPECS, *optim.SPECS, *trainers.SPECS, *trainers_vq_mi.SPECS]


@vfp.hookimpl
def vfp_add_cli_commands(app: typer.Typer) -> None:
    from vfp_il_components.cli import app as data_app

    app.add_typer(data_app, name="data")
