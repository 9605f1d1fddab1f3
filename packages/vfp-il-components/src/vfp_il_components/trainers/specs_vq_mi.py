"""Deprecated (vfp-il-components 1.0): these trainers' light configs moved to one module per trainer.

``from vfp_il_components.trainers.specs_vq_mi import X`` keeps working with a DeprecationWarning that
names the new import: ``cfg_vqvae_config`` (``CfgVqvaeFlowMatchingConfig``, ``CodeDropoutSchedule``),
``mutual_information_config`` (``MutualInformationEstimatorConfig``, ``ModeProbeConfig``) and the public
:mod:`vfp_il_components.settings` (``FlowSettings``, ``ClosedLoopSettings``), all light.
"""

from __future__ import annotations

from vfp_il_components._deprecated import moved_names

__getattr__ = moved_names(
    __name__,
    {
        "ClosedLoopSettings": "vfp_il_components.settings",
        "FlowSettings": "vfp_il_components.settings",
        "CfgVqvaeFlowMatchingConfig": "vfp_il_components.trainers.cfg_vqvae_config",
        "CodeDropoutSchedule": "vfp_il_components.trainers.cfg_vqvae_config",
        "ModeProbeConfig": "vfp_il_components.trainers.mutual_information_config",
        "MutualInformationEstimatorConfig": "vfp_il_components.trainers.mutual_information_config",
    },
)
