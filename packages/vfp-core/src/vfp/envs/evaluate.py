"""A policy evaluated in an ``env`` component: build the vector env, check it, roll out, close it.

What periodic evaluation during training and ``vfp eval --env`` share. ``policy`` is a
:class:`vfp.policy.Policy` (the deployment runtime): its features decide what the env must observe.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from vfp.components import ComponentConfig, ComponentKind
from vfp.envs.rollout import ENVS_EXTRA, EnvError, RolloutResult, build_env, check_env, rollout

if TYPE_CHECKING:
    from vfp._plugins import PluginHost
    from vfp.policy.metadata import FeatureSpec
    from vfp.policy.runtime import Policy

__all__ = ["EnvEvaluation", "check_env_for", "evaluate_in_env", "evaluate_saved_policy", "evaluation_random_state"]

ROLLOUT_STREAM: Final = 3
DEFAULT_EPISODES: Final = 50


@contextmanager
def evaluation_random_state(seed: int) -> Iterator[None]:
    """Seed torch's global stream for a rollout (from ``evaluation.seed``) and restore every generator after.

    Training's periodic evaluation and ``vfp eval --env`` both roll out under it, so the live weights
    and the saved checkpoint of one step give the same episodes and the same numbers.
    """
    import torch

    from vfp.engine.checkpoint import capture_rng_state, restore_rng_state
    from vfp.engine.runtime import derive_seed

    saved = capture_rng_state()
    torch.manual_seed(derive_seed(seed, ROLLOUT_STREAM))
    try:
        yield
    finally:
        restore_rng_state(saved)


def check_env_for(
    section: ComponentConfig, features: dict[str, FeatureSpec], *, host: PluginHost | None = None
) -> None:
    """Build one environment of ``section`` and check it against ``features`` (before any rollout)."""
    env = build_env(section, num_envs=1, seed=0, host=host)
    try:
        check_env(env, features, name=section.type)
    finally:
        env.close()


def evaluate_in_env(
    policy: Policy,
    section: ComponentConfig,
    *,
    episodes: int,
    seed: int = 0,
    num_envs: int | None = None,
    max_episode_steps: int | None = None,
    host: PluginHost | None = None,
    video_dir: Path | None = None,
    video_episodes: int = 0,
) -> RolloutResult:
    """Roll ``policy`` out for ``episodes`` episodes of the env ``section`` (``num_envs`` in parallel).

    The env is built with ``render_mode="rgb_array"`` only when videos are asked for, checked against
    the policy's features (an :class:`vfp.envs.EnvError` before any episode when they differ), and
    closed afterwards.
    """
    count = min(num_envs or episodes, episodes)
    render_mode = "rgb_array" if video_dir is not None and video_episodes > 0 else None
    env = build_env(
        section, num_envs=count, seed=seed, render_mode=render_mode, max_episode_steps=max_episode_steps, host=host
    )
    try:
        check_env(env, dict(policy.metadata.features), name=section.type)
        policy.reset()
        fps = policy.metadata.fps or 10.0
        return rollout(
            policy,
            env,
            episodes=episodes,
            seed=seed,
            max_episode_steps=max_episode_steps,
            name=section.type,
            video_dir=video_dir,
            video_episodes=video_episodes,
            fps=fps,
        )
    finally:
        policy.reset()
        env.close()


@dataclass(frozen=True)
class EnvEvaluation:
    """What ``vfp eval --env`` reports for one checkpoint."""

    checkpoint: Path
    step: int
    env: str
    metrics: Mapping[str, float]
    weights: str
    videos: list[Path]


def env_section(name: str, saved_evaluation: Mapping[str, Any], host: PluginHost) -> ComponentConfig:
    """The ``env`` section for ``--env NAME``: the run's own ``evaluation.env`` when it names the same env
    (its options kept), else NAME with its defaults. An env that is not installed names the installed ones."""
    from vfp._plugins import ComponentLookupError

    try:
        spec = host.registry.get(ComponentKind.ENV, name)
    except ComponentLookupError as exc:
        raise EnvError(f"{exc}; the synthetic tasks' envs come with {ENVS_EXTRA}") from None
    saved = saved_evaluation.get("env")
    data = dict(saved) if isinstance(saved, Mapping) and saved.get("type") == name else {"type": name}
    return spec.config.model_validate(data)


def evaluate_saved_policy(
    location: Path,
    env: str,
    *,
    checkpoint: str = "latest",
    episodes: int | None = None,
    steps: int | None = None,
    seed: int | None = None,
    device: str = "auto",
    video_dir: Path | None = None,
    video_episodes: int = 0,
    host: PluginHost | None = None,
) -> EnvEvaluation:
    """Load a run's (or an exported folder's) policy and roll it out in the env ``env`` (``vfp eval --env``).

    The rollout follows the run's ``evaluation`` section (episodes, num_envs, max_episode_steps,
    action_steps, seed) unless ``episodes``/``seed`` say otherwise, under the same random state as
    training's evaluation.
    """
    from vfp._plugins import get_host
    from vfp.policy.loading import read_saved, rebuild

    host = host or get_host()
    saved = read_saved(Path(location), checkpoint)
    raw = saved.config.get("evaluation")
    evaluation: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    section = env_section(env, evaluation, host)
    action_steps = evaluation.get("action_steps")
    policy = rebuild(
        saved,
        device=device,
        steps=steps,
        action_steps=int(action_steps) if isinstance(action_steps, int) else None,
        host=host,
    )
    seed = seed if seed is not None else int(evaluation.get("seed") or 0)
    with evaluation_random_state(seed):
        result = evaluate_in_env(
            policy,
            section,
            episodes=episodes or int(evaluation.get("episodes") or DEFAULT_EPISODES),
            seed=seed,
            num_envs=evaluation.get("num_envs"),
            max_episode_steps=evaluation.get("max_episode_steps"),
            host=host,
            video_dir=video_dir,
            video_episodes=video_episodes,
        )
    return EnvEvaluation(
        checkpoint=saved.source,
        step=saved.step,
        env=env,
        metrics=result.metrics(),
        weights=saved.weights_kind,
        videos=list(result.videos),
    )
