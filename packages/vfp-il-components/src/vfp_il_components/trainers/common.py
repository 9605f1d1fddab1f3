"""Deprecated (vfp-il-components 1.0): the flow-matching and evaluation helpers moved to public modules.

``from vfp_il_components.trainers.common import X`` keeps working with a DeprecationWarning that
names the new import: :mod:`vfp_il_components.flow` (``sample_noise``, ``sample_times``,
``straight_path``, ``integrate``, ``masked_mse``, ``observation_of``, ``ACTION_KEY``, ``VelocityFn``) and
:mod:`vfp_il_components.evaluation` (``evaluate_policy``, ``ObservationCodec``, ``task_of``,
``task_policy``, ``rollout_options``, ``SampleFn``); the settings are in :mod:`vfp_il_components.settings`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from vfp_il_components._deprecated import moved_names

if TYPE_CHECKING:
    from vfp.engine import TrainerContext
    from vfp_il_components.settings import ClosedLoopSettings

_FLOW = "vfp_il_components.flow"
_EVALUATION = "vfp_il_components.evaluation"
_SETTINGS = "vfp_il_components.settings"


def _rollout_options_1_0(context: TrainerContext, settings: ClosedLoopSettings) -> dict[str, Any]:
    """1.0 behaviour: the rollout as keyword arguments of ``Task.evaluate``/``Task.rollout``."""
    from vfp_il_components.evaluation import rollout_options

    return dataclasses.asdict(rollout_options(context, settings))


__getattr__ = moved_names(
    __name__,
    {
        **dict.fromkeys(
            (
                "ACTION_KEY",
                "OBSERVATION_PREFIX",
                "VelocityFn",
                "integrate",
                "masked_mse",
                "observation_of",
                "sample_noise",
                "sample_times",
                "straight_path",
            ),
            _FLOW,
        ),
        **dict.fromkeys(
            ("ObservationCodec", "SampleFn", "evaluate_policy", "rollout_options", "task_of", "task_policy"),
            _EVALUATION,
        ),
        **dict.fromkeys(("ClosedLoopSettings", "FlowSettings"), _SETTINGS),
    },
    compatible={
        "rollout_options": (
            _rollout_options_1_0,
            "it returns a RolloutOptions: pass it as task.evaluate(policy, options), not as **keywords",
        )
    },
)
