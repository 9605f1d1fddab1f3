"""Imitation-learning components for vfp, registered through the ``vfp`` entry-point group.

Public modules a third-party plugin may import (documented in docs/components/trainers.md, "Reusing the
building blocks"): :mod:`vfp_il_components.settings` (light config sections), :mod:`vfp_il_components.flow`
and :mod:`vfp_il_components.evaluation` (heavy trainer-side blocks), and :mod:`vfp_il_components.tasks`
(the synthetic tasks). Everything else is internal to this plugin.
"""
