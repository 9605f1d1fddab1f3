"""Trainers: naive flow matching, VFP, VFP single expert, CFG VQ-VAE flow matching and the MI estimator.

Each trainer has a light ``<name>_config.py`` (its config model and ComponentSpec, no torch import) and a
heavy implementation module loaded only when it is built: ``flow_matching``, ``vfp``, ``cfg_vqvae`` and
``mutual_information``. The blocks they share are public: :mod:`vfp_il_components.settings`,
:mod:`vfp_il_components.flow` and :mod:`vfp_il_components.evaluation`.
"""
