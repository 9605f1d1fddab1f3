"""Deprecated (vfp-il-components 1.0): the trainers' light configs moved to one module per trainer.

``from vfp_il_components.trainers.specs import X`` keeps working with a DeprecationWarning that names
the new import: ``flow_matching_config`` (``NaiveFlowMatchingConfig``), ``vfp_config`` (``VFPConfig``,
``VFPSingleExpertConfig``, ``LatentSettings``), and the public :mod:`vfp_il_components.settings`
(``FlowSettings``, ``ClosedLoopSettings``), all light.
"""

from __future__ import annotations

from vfp_il_components._deprecated import moved_names

__getattr__ = moved_names(
    __name__,
    {
        "ClosedLoopSettings": "vfp_il_components.settings",
        "FlowSettings": "vfp_il_components.settings",
        "Integrator": "vfp_il_components.settings",
        "TimeDistribution": "vfp_il_components.settings",
        "NaiveFlowMatchingConfig": "vfp_il_components.trainers.flow_matching_config",
        "LatentSettings": "vfp_il_components.trainers.vfp_config",
        "VFPConfig": "vfp_il_components.trainers.vfp_config",
        "VFPSingleExpertConfig": "vfp_il_components.trainers.vfp_config",
    },
)
