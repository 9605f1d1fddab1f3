"""Light config and registration of the ``naive_flow_matching_policy`` trainer (no torch import).

Implementation: ``trainers/flow_matching.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from vfp import ComponentKind, ComponentSpec, ComponentUse
from vfp_il_components.trainers._config import VELOCITY_TYPES, FlowTrainerConfig, require_loss, require_model

__all__ = ["SPECS", "NaiveFlowMatchingConfig"]


class NaiveFlowMatchingConfig(FlowTrainerConfig):
    """Conditional flow matching on action chunks with a velocity net conditioned on the observation feature.

    Model components: ``obs_encoder`` (obs_encoder), ``velocity`` (mlp or chunk_transformer). Loss: ``flow`` (l2).
    """

    def component_use(self, experiment: Any) -> ComponentUse:
        return ComponentUse(models=frozenset({"obs_encoder", "velocity"}), losses=frozenset({"flow"}))

    def cross_check(self, experiment: Any) -> Iterable[tuple[str, str]]:
        yield from require_model(experiment, "obs_encoder", ("obs_encoder",), "observation features")
        yield from require_model(experiment, "velocity", VELOCITY_TYPES, "velocity network")
        yield from require_loss(experiment, "flow", "l2", "flow-matching regression")


SPECS: list[ComponentSpec] = [
    ComponentSpec(
        ComponentKind.TRAINER,
        "naive_flow_matching_policy",
        NaiveFlowMatchingConfig,
        "vfp_il_components.trainers.flow_matching:NaiveFlowMatchingTrainer",
        "Conditional flow matching on action chunks; N-step Euler or Heun sampling.",
    ),
]
