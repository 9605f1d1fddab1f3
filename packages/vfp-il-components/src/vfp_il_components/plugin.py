"""The vfp-il-components plugin: registers its components through the public hooks.

Each area keeps light modules of config models and ComponentSpecs (no torch import): ``specs`` for
data, losses, models and optimizers, one ``<trainer>_config`` module per trainer; implementations are
imported only when a component is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import vfp
from vfp import ComponentSpec

if TYPE_CHECKING:
    import typer

VFP_CONTRACT = "1.1"


@vfp.hookimpl
def vfp_register_components() -> list[ComponentSpec]:
    from vfp_il_components.data import specs as data
    from vfp_il_components.envs import metaworld
    from vfp_il_components.envs import specs as envs
    from vfp_il_components.losses import specs as losses
    from vfp_il_components.models import specs as models
    from vfp_il_components.optim import specs as optim
    from vfp_il_components.trainers import (
        cfg_vqvae_config,
        flow_matching_config,
        mutual_information_config,
        vfp_config,
    )

    trainers = (flow_matching_config, vfp_config, cfg_vqvae_config, mutual_information_config)
    return [
        *data.SPECS,
        *losses.SPECS,
        *models.SPECS,
        *optim.SPECS,
        *envs.SPECS,
        *metaworld.SPECS,
        *(spec for t in trainers for spec in t.SPECS),
    ]


@vfp.hookimpl
def vfp_add_cli_commands(app: typer.Typer) -> None:
    from vfp_il_components.cli import app as data_app

    app.add_typer(data_app, name="data")
