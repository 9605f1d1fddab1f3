"""Environments: the engine's closed-loop rollouts in ``env`` components (see docs/environments.md).

An ``env`` component builds a gymnasium vector env whose observations are keyed by the dataset's
feature names; :func:`build_env` builds one from its config section, :func:`check_env` checks it
against a policy's features before any episode, :func:`rollout` runs a policy (the deployment
runtime, :class:`vfp.policy.Policy`) in it and :class:`RolloutResult` scores the episodes. Only
numpy is imported here; vfp-core never imports gymnasium.
"""

from __future__ import annotations

from vfp.envs.evaluate import check_env_for, evaluate_in_env
from vfp.envs.metrics import episode_metrics, mode_frequencies, normalized_entropy, total_variation
from vfp.envs.rollout import EnvError, EnvRolloutError, RolloutResult, build_env, check_env, rollout

__all__ = [
    "EnvError",
    "EnvRolloutError",
    "RolloutResult",
    "build_env",
    "check_env",
    "check_env_for",
    "episode_metrics",
    "evaluate_in_env",
    "mode_frequencies",
    "normalized_entropy",
    "rollout",
    "total_variation",
]
