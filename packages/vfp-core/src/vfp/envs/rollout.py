"""Engine-owned rollouts: build an ``env`` component, check it against the policy, run episodes, score them.

The policy is anything with ``reset()`` and ``act(observation) -> actions`` for a batch of
environments in lockstep (a :class:`vfp.policy.Policy`, the deployment runtime, in the engine).
Episodes run in waves of ``num_envs``: every environment is reset together (``reset(seed=seed +
wave * num_envs)``), the policy is reset, and the wave steps until each environment has finished its
first episode (terminated, truncated, or ``max_episode_steps`` reached); whatever an environment does
after its first episode (gymnasium's autoreset) is ignored. Only gymnasium's vector-env interface is
used, so vfp-core does not import gymnasium.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import numpy as np
from numpy.typing import NDArray

from vfp.components import ComponentConfig, ComponentKind
from vfp.envs.metrics import episode_metrics

if TYPE_CHECKING:
    from vfp._plugins import PluginHost
    from vfp.policy.metadata import FeatureSpec

__all__ = [
    "EnvError",
    "EnvRolloutError",
    "RolloutResult",
    "build_env",
    "check_env",
    "rollout",
]

ENVS_EXTRA: Final = "pip install 'vfp-il-components[envs]' (gymnasium, imageio)"
STEP_CAP: Final = 10_000
"""Steps after which an episode of an env with no limit of its own is cut (set ``max_episode_steps``)."""


class EnvError(RuntimeError):
    """An env that cannot be built, or that does not fit the policy (the message says what to change)."""


class EnvRolloutError(EnvError):
    """An env (or the policy) that raised during a rollout; ``episode`` and ``step`` say where."""

    def __init__(self, message: str, *, episode: int, step: int) -> None:
        super().__init__(message)
        self.episode = episode
        self.step = step


class Actor(Protocol):
    """What :func:`rollout` drives: a policy for a batch of environments in lockstep."""

    def reset(self) -> None: ...

    def act(self, observation: Mapping[str, object]) -> Any: ...


def build_env(
    section: ComponentConfig,
    *,
    num_envs: int,
    seed: int,
    render_mode: str | None = None,
    max_episode_steps: int | None = None,
    host: PluginHost | None = None,
) -> Any:
    """The vector env of an ``env`` section ``{type: NAME, ...}`` (``max_episode_steps`` overrides the section's)."""
    from vfp._plugins import ComponentLookupError, PluginError, get_host

    registry = (host or get_host()).registry
    try:
        registry.get(ComponentKind.ENV, section.type)
    except ComponentLookupError as exc:
        raise EnvError(f"{exc}; the synthetic tasks' envs come with {ENVS_EXTRA}") from None
    if max_episode_steps is not None and "max_episode_steps" in type(section).model_fields:
        section = section.model_copy(update={"max_episode_steps": max_episode_steps})
    try:
        target = registry.load(ComponentKind.ENV, section.type)
    except PluginError as exc:
        hint = f" ({ENVS_EXTRA})" if isinstance(exc.__cause__, ModuleNotFoundError) else ""
        raise EnvError(f"{exc}{hint}") from None
    try:
        env = target(section, num_envs=num_envs, seed=seed, render_mode=render_mode)
    except ModuleNotFoundError as exc:
        raise EnvError(f"env {section.type!r} cannot be built: {exc} ({ENVS_EXTRA})") from None
    count = getattr(env, "num_envs", None)
    if count != num_envs:
        raise EnvError(
            f"env {section.type!r} did not build a gymnasium vector env of {num_envs} environments "
            f"(got {type(env).__name__} with num_envs={count!r})"
        )
    return env


def _shape(space: Any) -> tuple[int, ...]:
    return tuple(int(n) for n in getattr(space, "shape", None) or ())


def check_env(env: Any, features: Mapping[str, FeatureSpec], *, name: str = "env") -> None:
    """Every observation the policy needs must be in the env's observation space with the dataset's shape,
    and the action space must be the dataset's; otherwise an :class:`EnvError` naming every mismatch."""
    space = getattr(env, "single_observation_space", None)
    spaces = getattr(space, "spaces", None)
    if not isinstance(spaces, Mapping):
        raise EnvError(
            f"env {name!r}: its single observation space must be a gymnasium.spaces.Dict keyed by the dataset's "
            f"feature names (observation.state, observation.images.<cam>), got {type(space).__name__}"
        )
    problems: list[str] = []
    for key, feature in features.items():
        if feature.role == "action":
            action_shape = _shape(getattr(env, "single_action_space", None))
            if action_shape != tuple(feature.shape):
                problems.append(f"action space has shape {action_shape}, the policy's actions are {feature.shape}")
            continue
        if key not in spaces:
            problems.append(f"{key}: missing from the observation space (it has: {', '.join(spaces) or 'nothing'})")
            continue
        got = _shape(spaces[key])
        if feature.role == "image":
            channels, height, width = feature.shape
            expected: tuple[int, ...] = (height, width, channels)
            dtype = np.dtype(getattr(spaces[key], "dtype", None) or np.float64)
            if dtype != np.uint8:
                problems.append(f"{key}: images must be uint8 (H, W, C), the env gives dtype {dtype}")
        else:
            expected = tuple(feature.shape)
        if got != expected:
            problems.append(f"{key}: the env gives shape {got}, the policy expects {expected}")
    if problems:
        raise EnvError(f"env {name!r} does not match the policy's features: " + "; ".join(problems))


@dataclass
class RolloutResult:
    """Per-episode outcome of a rollout, and the env's mode description when it has one."""

    success: NDArray[np.bool_]
    returns: NDArray[np.float64]
    lengths: NDArray[np.int64]
    modes: NDArray[np.int64] | None = None
    off_manifold: NDArray[np.bool_] | None = None
    mode_names: Sequence[str] | None = None
    mode_weights: Sequence[float] | None = None
    videos: list[Path] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """success_rate, mean_return, mean_episode_length, and the mode metrics where the env has modes."""
        return episode_metrics(
            success=self.success,
            returns=self.returns,
            lengths=self.lengths,
            modes=self.modes,
            mode_names=self.mode_names,
            mode_weights=self.mode_weights,
            off_manifold=self.off_manifold,
        )


def _info_flags(infos: Mapping[str, Any], keys: Sequence[str], num_envs: int) -> NDArray[np.bool_] | None:
    """A per-env bool array from the first of ``keys`` the infos carry (masked by gymnasium's ``_key``)."""
    for key in keys:
        if key in infos:
            values: NDArray[np.bool_] = np.asarray(infos[key]).astype(bool).reshape(num_envs)
            mask: NDArray[np.bool_] = (
                np.asarray(infos.get(f"_{key}", np.ones(num_envs, dtype=bool))).astype(bool).reshape(num_envs)
            )
            return values & mask
    return None


def _info_modes(infos: Mapping[str, Any], num_envs: int) -> tuple[NDArray[np.int64], NDArray[np.bool_]] | None:
    if "mode" not in infos:
        return None
    values = np.asarray(infos["mode"]).astype(np.int64).reshape(num_envs)
    mask = np.asarray(infos.get("_mode", np.ones(num_envs, dtype=bool))).astype(bool).reshape(num_envs)
    return values, mask


def _frames(env: Any, num_envs: int) -> list[NDArray[np.uint8]] | None:
    rendered = env.render()
    if rendered is None:
        return None
    frames = list(rendered)
    return [np.asarray(frame, dtype=np.uint8) for frame in frames[:num_envs]]


def _write_video(path: Path, frames: Sequence[NDArray[np.uint8]], fps: float) -> Path:
    """MP4 when imageio can encode it (imageio-ffmpeg or PyAV), else GIF."""
    try:
        import imageio.v3 as iio
    except ModuleNotFoundError:
        raise EnvError(f"--video needs imageio: {ENVS_EXTRA}") from None
    stacked = np.stack(list(frames))
    try:
        iio.imwrite(path.with_suffix(".mp4"), stacked, fps=fps)
        return path.with_suffix(".mp4")
    except Exception:
        path.with_suffix(".mp4").unlink(missing_ok=True)
    iio.imwrite(path.with_suffix(".gif"), stacked, duration=1000.0 / fps, loop=0)
    return path.with_suffix(".gif")


def _failure(name: str, exc: Exception, where: str, first: int, take: int, step: int) -> EnvRolloutError:
    span = f"episode {first}" if take == 1 else f"episodes {first}-{first + take - 1}"
    return EnvRolloutError(
        f"env {name!r} raised in {where} of {span} at step {step}: {type(exc).__name__}: {exc}",
        episode=first,
        step=step,
    )


def rollout(
    policy: Actor,
    env: Any,
    *,
    episodes: int,
    seed: int = 0,
    max_episode_steps: int | None = None,
    name: str = "env",
    video_dir: Path | None = None,
    video_episodes: int = 0,
    fps: float = 10.0,
) -> RolloutResult:
    """Run ``episodes`` episodes of ``policy`` in the vector ``env`` (waves of ``env.num_envs``) and record them.

    ``max_episode_steps`` cuts episodes the env has not ended (None: the env's own limit, at most
    10000 steps). With ``video_dir``, the first ``video_episodes`` episodes are written there as
    MP4 (or GIF) from ``env.render()``, for an env built with ``render_mode="rgb_array"``.
    Raises :class:`EnvRolloutError` (with the episode and step) when the env raises.
    """
    num_envs = int(env.num_envs)
    cap = max_episode_steps or STEP_CAP
    action_space = env.single_action_space
    action_dtype = np.dtype(getattr(action_space, "dtype", None) or np.float32)
    success: list[NDArray[np.bool_]] = []
    returns: list[NDArray[np.float64]] = []
    lengths: list[NDArray[np.int64]] = []
    modes: list[NDArray[np.int64]] = []
    off: list[NDArray[np.bool_]] = []
    modes_seen, off_seen = True, True
    knows_modes = hasattr(env, "mode_names")
    videos: list[Path] = []
    done_episodes = 0
    wave = 0
    while done_episodes < episodes:
        take = min(num_envs, episodes - done_episodes)
        first = done_episodes
        step = 0
        try:
            observation, _ = env.reset(seed=seed + wave * num_envs)
        except Exception as exc:
            raise _failure(name, exc, "reset", first, take, step) from exc
        policy.reset()
        alive = np.ones(num_envs, dtype=bool)
        wave_success = np.zeros(num_envs, dtype=bool)
        wave_off = np.zeros(num_envs, dtype=bool)
        wave_modes = np.full(num_envs, -1, dtype=np.int64)
        wave_returns = np.zeros(num_envs)
        wave_lengths = np.zeros(num_envs, dtype=np.int64)
        seen_off, seen_modes = False, False
        recording = min(video_episodes - first, take) if video_dir is not None else 0
        clips: list[list[NDArray[np.uint8]]] = [[] for _ in range(max(recording, 0))]
        if clips:
            frames = _frames(env, num_envs)
            for i, clip in enumerate(clips):
                if frames is not None:
                    clip.append(frames[i])
        while alive.any() and step < cap:
            actions = np.asarray(policy.act(observation), dtype=action_dtype)
            try:
                observation, reward, terminated, truncated, infos = env.step(actions)
            except Exception as exc:
                raise _failure(name, exc, "step", first, take, step) from exc
            step += 1
            reward = np.asarray(reward, dtype=np.float64).reshape(num_envs)
            wave_returns[alive] += reward[alive]
            wave_lengths[alive] += 1
            flags = _info_flags(infos, ("success", "is_success"), num_envs)
            if flags is not None:
                wave_success |= alive & flags
            leaving = _info_flags(infos, ("off_manifold",), num_envs)
            if leaving is not None:
                seen_off = True
                wave_off |= alive & leaving
            reported = _info_modes(infos, num_envs)
            if reported is not None:
                seen_modes = True
                values, mask = reported
                update = alive & mask
                wave_modes[update] = values[update]
            if clips:
                frames = _frames(env, num_envs)
                for i, clip in enumerate(clips):
                    if frames is not None and alive[i]:
                        clip.append(frames[i])
            alive &= ~(np.asarray(terminated, dtype=bool).reshape(num_envs) | np.asarray(truncated).reshape(num_envs))
        success.append(wave_success[:take])
        returns.append(wave_returns[:take])
        lengths.append(wave_lengths[:take])
        modes.append(wave_modes[:take])
        off.append(wave_off[:take])
        modes_seen &= seen_modes
        off_seen &= seen_off
        for i, clip in enumerate(clips):
            if clip:
                assert video_dir is not None
                video_dir.mkdir(parents=True, exist_ok=True)
                videos.append(_write_video(video_dir / f"episode_{first + i:04d}", clip, fps))
        done_episodes += take
        wave += 1
    all_modes = np.concatenate(modes) if knows_modes and modes_seen else None
    all_off = np.concatenate(off) if off_seen else None
    return RolloutResult(
        success=np.concatenate(success),
        returns=np.concatenate(returns),
        lengths=np.concatenate(lengths),
        modes=all_modes,
        off_manifold=all_off,
        mode_names=list(env.mode_names) if knows_modes else None,
        mode_weights=[float(w) for w in env.mode_weights] if knows_modes and hasattr(env, "mode_weights") else None,
        videos=videos,
    )
