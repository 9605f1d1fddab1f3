"""The policy runtime: a trained trainer's sampler behind ``predict_chunk`` (batches) and ``act`` (a control loop).

Observations are given as the dataset names them (``observation.state``, ``observation.images.front``),
as numpy arrays or torch tensors; state features as numbers, images as uint8 ``H, W, C`` or float
``C, H, W`` in [0, 1]. The runtime checks every key, shape and dtype, normalizes the state features
with the statistics saved with the weights, samples normalized action chunks through the trainer's
``sample_actions``, and unnormalizes them. Outputs follow the inputs: numpy in, numpy out (float32);
any torch tensor in, a CPU torch tensor out.

Randomness: ``predict_chunk(obs, noise=N, seed=S)`` is exactly
``unnormalize(trainer.sample_actions(normalize(obs), steps, noise=N, generator=torch.Generator().manual_seed(S)))``.
``noise`` is the standard-normal source of the flow ``(B, horizon, action_dim)`` (the trainer scales
it by its ``noise_std``); the generator draws, on the CPU, whatever else the trainer samples (VFP's
latent z, CFG's code) and then the noise when none is given. Without ``seed``, the policy's own
generator is used (seeded once by ``load_policy(seed=...)``), or torch's global stream when the
policy has no seed.
"""

from __future__ import annotations

import inspect
import math
from collections import deque
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Final

import numpy as np
import torch

from vfp.policy.metadata import PolicyMetadata
from vfp.protocols import DataInfo, NormalizationStats

__all__ = ["ObservationError", "Policy", "PolicyError"]

ACTION_KEY: Final = "action"
PAD_SUFFIX: Final = "_is_pad"
EPS: Final = 1e-8
"""Added to the std (or range) when normalizing, as the data loaders do."""


class PolicyError(RuntimeError):
    """A policy that cannot be loaded or cannot do what was asked (the message says why)."""


class ObservationError(ValueError):
    """An observation with a missing key, a wrong shape or a wrong dtype (the message names the key)."""


Array = np.ndarray[Any, Any] | torch.Tensor


def normalize(stats: NormalizationStats, key: str, x: torch.Tensor, mode: str) -> torch.Tensor:
    """Normalize ``x`` as the data loaders do (``mean_std``, ``min_max`` to [-1, 1], or ``none``)."""
    if mode == "none":
        return x
    entry = stats[key]
    if mode == "mean_std":
        return (x - entry["mean"].to(x)) / (entry["std"].to(x) + EPS)
    if mode == "min_max":
        low, high = entry["min"].to(x), entry["max"].to(x)
        return 2.0 * (x - low) / (high - low + EPS) - 1.0
    raise PolicyError(f"unknown normalization mode {mode!r} for {key!r}")


def unnormalize(stats: NormalizationStats, key: str, x: torch.Tensor, mode: str) -> torch.Tensor:
    """The exact inverse of :func:`normalize`."""
    if mode == "none":
        return x
    entry = stats[key]
    if mode == "mean_std":
        return x * (entry["std"].to(x) + EPS) + entry["mean"].to(x)
    if mode == "min_max":
        low, high = entry["min"].to(x), entry["max"].to(x)
        return (x + 1.0) / 2.0 * (high - low + EPS) + low
    raise PolicyError(f"unknown normalization mode {mode!r} for {key!r}")


def _autocast(device: torch.device, precision: str) -> AbstractContextManager[object]:
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _shape_text(shape: tuple[int | str, ...]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


def _as_tensor(key: str, value: object) -> tuple[torch.Tensor, bool]:
    """``(tensor on the CPU or its device, was_torch)``; numpy arrays are wrapped without a copy when writable."""
    if isinstance(value, torch.Tensor):
        return value.detach(), True
    if isinstance(value, np.ndarray | np.generic | list | tuple | float | int):
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise ObservationError(f"{key}: expected a numeric array, got dtype {array.dtype}")
        if not array.flags.writeable:
            array = array.copy()
        return torch.from_numpy(array), False
    raise ObservationError(f"{key}: expected a numpy array or a torch tensor, got {type(value).__name__}")


class Policy:
    """A trained policy: ``predict_chunk`` for batches, ``act`` for a control loop, normalization inside.

    Build it with :func:`vfp.load_policy`. ``metadata`` describes the features, history, horizon,
    action steps, fps, trainer, versions and metrics.
    """

    def __init__(
        self,
        trainer: Any,
        *,
        info: DataInfo,
        normalization_stats: NormalizationStats,
        metadata: PolicyMetadata,
        device: torch.device,
        precision: str = "fp32",
        steps: int | None = None,
        seed: int | None = None,
        temporal_ensemble: float | None = None,
    ) -> None:
        if not getattr(trainer, "samples_actions", True):
            raise PolicyError(f"trainer {metadata.trainer!r} does not sample actions: it is not a policy")
        if steps is not None and steps < 1:
            raise PolicyError(f"steps must be at least 1, got {steps}")
        if temporal_ensemble is not None and temporal_ensemble < 0:
            raise PolicyError(f"temporal_ensemble (ACT's coefficient m) must be >= 0, got {temporal_ensemble}")
        self.trainer = trainer
        self.info = info
        self.metadata = metadata
        self.device = device
        self.precision = precision
        self.steps = steps
        self.temporal_ensemble = temporal_ensemble
        self._stats = {k: {n: v.to(device) for n, v in entry.items()} for k, entry in normalization_stats.items()}
        self._generator = torch.Generator().manual_seed(seed) if seed is not None else None
        parameters = inspect.signature(trainer.sample_actions).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        self._accepts = {name for name in ("noise", "generator") if takes_any or name in parameters}
        self._observation_keys = [key for key, f in info.features.items() if f.role != "action"]
        self._history: deque[dict[str, torch.Tensor]] = deque(maxlen=info.history)
        self._seen = 0
        self._queue: deque[torch.Tensor] = deque()
        self._chunks: deque[tuple[int, torch.Tensor]] = deque()
        self._t = 0
        self._batch: int | None = None

    # -- properties ----------------------------------------------------------------------------------
    @property
    def history(self) -> int:
        return self.info.history

    @property
    def horizon(self) -> int:
        return self.info.horizon

    @property
    def action_dim(self) -> int:
        return self.info.action_dim

    @property
    def action_steps(self) -> int:
        return self.metadata.action_steps

    def __repr__(self) -> str:
        return (
            f"Policy(trainer={self.metadata.trainer!r}, step={self.metadata.step}, history={self.history}, "
            f"horizon={self.horizon}, action_dim={self.action_dim}, device={str(self.device)!r})"
        )

    # -- observations --------------------------------------------------------------------------------
    def _convert(self, key: str, value: object, leading: tuple[str, ...]) -> tuple[torch.Tensor, bool, bool]:
        """One feature to float ``(*lead, *shape)`` on the device; ``(tensor, was_torch, had_batch_dim)``.

        ``leading`` names the leading dimensions after the optional batch one (``("T",)`` for a history).
        """
        feature = self.info.features[key]
        tensor, was_torch = _as_tensor(key, value)
        shape = tuple(feature.shape)
        is_image = feature.role == "image"
        if is_image and tensor.dtype == torch.uint8:
            channels, height, width = shape
            layout: tuple[int, ...] = (height, width, channels)
            kind = "uint8 (..., H, W, C)"
        elif is_image and tensor.is_floating_point():
            layout, kind = shape, "float (..., C, H, W) in [0, 1]"
        elif is_image:
            raise ObservationError(
                f"{key}: images must be uint8 (H, W, C) or float (C, H, W) in [0, 1], got dtype {tensor.dtype}"
            )
        elif tensor.dtype == torch.bool or tensor.is_complex():
            raise ObservationError(f"{key}: expected a float or integer array, got dtype {tensor.dtype}")
        else:
            layout, kind = shape, "numbers"
        rank = len(layout) + len(leading)
        if tensor.ndim not in (rank, rank + 1) or tuple(tensor.shape[tensor.ndim - len(layout) :]) != layout:
            expected = _shape_text(("B", *leading, *layout))
            raise ObservationError(
                f"{key}: expected shape {expected} or {_shape_text((*leading, *layout))} ({kind}), "
                f"got {tuple(tensor.shape)}"
            )
        batched = tensor.ndim == rank + 1
        if not batched:
            tensor = tensor.unsqueeze(0)
        if leading == ("T",) and tensor.shape[1] != self.history:
            raise ObservationError(
                f"{key}: expected {self.history} observation steps (history), got {tensor.shape[1]} "
                f"in shape {tuple(tensor.shape)}"
            )
        tensor = tensor.to(self.device, non_blocking=True)
        if is_image and tensor.dtype == torch.uint8:
            tensor = tensor.movedim(-1, -3).contiguous().float().div_(255.0)
        else:  # contiguous, as the data loaders give it: results must not depend on the caller's memory layout
            tensor = tensor.float().contiguous()
        return tensor, was_torch, batched

    def _read(
        self, observation: Mapping[str, object], leading: tuple[str, ...]
    ) -> tuple[dict[str, torch.Tensor], bool, bool]:
        if not isinstance(observation, Mapping):
            raise ObservationError(
                f"an observation must be a mapping of keys to arrays, got {type(observation).__name__}"
            )
        missing = [key for key in self._observation_keys if key not in observation]
        if missing:
            raise ObservationError(
                f"missing observation key(s) {', '.join(missing)}; the policy needs "
                + ", ".join(f"{k} {_shape_text(tuple(self.info.features[k].shape))}" for k in self._observation_keys)
            )
        out: dict[str, torch.Tensor] = {}
        torch_seen, batch_flags, sizes = False, set(), set()
        for key in self._observation_keys:
            tensor, was_torch, batched = self._convert(key, observation[key], leading)
            out[key] = tensor
            torch_seen |= was_torch
            batch_flags.add(batched)
            sizes.add(int(tensor.shape[0]))
        if len(batch_flags) > 1 or len(sizes) > 1:
            shapes = ", ".join(f"{key} {tuple(out[key].shape)}" for key in out)
            raise ObservationError(f"the observation keys disagree on the batch: {shapes}")
        return out, torch_seen, batch_flags.pop()

    def _pads(self, observation: Mapping[str, object], batch: int) -> dict[str, torch.Tensor]:
        pads: dict[str, torch.Tensor] = {}
        for key in self._observation_keys:
            value = observation.get(key + PAD_SUFFIX)
            if value is None:
                continue
            tensor, _ = _as_tensor(key + PAD_SUFFIX, value)
            if tensor.ndim == 1:
                tensor = tensor.unsqueeze(0)
            if tuple(tensor.shape) != (batch, self.history):
                raise ObservationError(
                    f"{key}{PAD_SUFFIX}: expected shape (B, T) = ({batch}, {self.history}), got {tuple(tensor.shape)}"
                )
            pads[key + PAD_SUFFIX] = tensor.to(self.device).bool()
        return pads

    def normalize_observation(self, observation: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """State features normalized with the saved statistics; images and pad masks pass unchanged."""
        out: dict[str, torch.Tensor] = {}
        for key, value in observation.items():
            feature = self.info.features.get(key)
            if feature is not None and feature.role == "state":
                value = normalize(self._stats, key, value.float(), self.metadata.normalization.get(key, "none"))
            out[key] = value
        return out

    def unnormalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Normalized action chunks back to dataset units."""
        return unnormalize(
            self._stats, ACTION_KEY, actions.float(), self.metadata.normalization.get(ACTION_KEY, "none")
        )

    # -- sampling ------------------------------------------------------------------------------------
    def _noise(self, noise: object, batch: int, batched: bool) -> torch.Tensor:
        tensor, _ = _as_tensor("noise", noise)
        expected = (batch, self.horizon, self.action_dim)
        if not batched and tensor.ndim == 2:
            tensor = tensor.unsqueeze(0)
        if tuple(tensor.shape) != expected or not (tensor.is_floating_point()):
            raise ObservationError(
                f"noise: expected standard-normal floats of shape (B, horizon, action_dim) = {expected}"
                f"{' or ' + str(expected[1:]) if not batched else ''}, got {tuple(tensor.shape)} {tensor.dtype}"
            )
        return tensor.float()

    def _sample(
        self, normalized: dict[str, torch.Tensor], steps: int | None, noise: torch.Tensor | None, seed: int | None
    ) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed) if seed is not None else self._generator
        kwargs: dict[str, Any] = {}
        if noise is not None:
            if "noise" not in self._accepts:
                raise PolicyError(
                    f"trainer {self.metadata.trainer!r} takes no noise: its sample_actions has no `noise` keyword"
                )
            kwargs["noise"] = noise
        if generator is not None:
            if "generator" not in self._accepts:
                raise PolicyError(
                    f"trainer {self.metadata.trainer!r} cannot sample reproducibly: its sample_actions has no "
                    "`generator` keyword (load the policy without seed)"
                )
            kwargs["generator"] = generator
        with torch.no_grad(), _autocast(self.device, self.precision):
            actions: torch.Tensor = self.trainer.sample_actions(normalized, steps or self.steps, **kwargs)
        expected = (next(iter(normalized.values())).shape[0], self.horizon, self.action_dim)
        if tuple(actions.shape) != expected:
            raise PolicyError(
                f"trainer {self.metadata.trainer!r} returned actions of shape {tuple(actions.shape)}, "
                f"expected {expected}"
            )
        return self.unnormalize_actions(actions)

    def predict_chunk(
        self,
        observation: Mapping[str, object],
        *,
        steps: int | None = None,
        noise: object | None = None,
        seed: int | None = None,
    ) -> Any:
        """Unnormalized action chunks ``(B, horizon, action_dim)`` for observations with history.

        Each key holds ``(B, history, *shape)`` (or ``(history, *shape)`` for one observation, which
        returns ``(horizon, action_dim)``), laid out as training batches are; ``<key>_is_pad``
        ``(B, history)`` masks may be given. ``steps``: integration steps (default: the policy's, else
        the trainer's). ``noise``: the flow's standard-normal source ``(B, horizon, action_dim)``.
        ``seed``: a fresh CPU generator for this call (see the module docstring for the exact rule).
        """
        if steps is not None and steps < 1:
            raise PolicyError(f"steps must be at least 1, got {steps}")
        features, torch_seen, batched = self._read(observation, ("T",))
        batch = int(next(iter(features.values())).shape[0])
        features.update(self._pads(observation, batch))
        source = self._noise(noise, batch, batched) if noise is not None else None
        chunk = self._sample(self.normalize_observation(features), steps, source, seed)
        if not batched:
            chunk = chunk[0]
        chunk = chunk.cpu()
        return chunk if torch_seen else chunk.numpy()

    # -- control loop --------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the observation history, the queued actions and the chunks being ensembled (a new episode)."""
        self._history.clear()
        self._seen = 0
        self._queue.clear()
        self._chunks.clear()
        self._t = 0
        self._batch = None

    def _history_batch(self) -> dict[str, torch.Tensor]:
        """The last ``history`` frames as a training batch: the first frame repeated and marked as padding."""
        frames = list(self._history)
        frames = [frames[0]] * (self.history - len(frames)) + frames
        batch: dict[str, torch.Tensor] = {}
        num_pad = max(self.history - self._seen, 0)
        for key in frames[0]:
            stacked = torch.stack([frame[key] for frame in frames], dim=1)
            batch[key] = stacked
            pad = torch.zeros(stacked.shape[:2], dtype=torch.bool, device=stacked.device)
            pad[:, :num_pad] = True
            batch[key + PAD_SUFFIX] = pad
        return batch

    def act(self, observation: Mapping[str, object], *, steps: int | None = None) -> Any:
        """The action to execute now, for one environment step (or a batch of environments in lockstep).

        ``observation`` holds the current frame only: ``(*shape)`` per key, or ``(B, *shape)`` for B
        environments (the result is then ``(B, action_dim)``). The policy keeps the last ``history``
        frames (at the start of an episode the first frame is repeated and marked as padding, as the
        data loader pads), queries the model when its queue is empty and plays ``action_steps``
        actions of each chunk. With ``temporal_ensemble=m`` it queries the model at every step and
        returns ACT's exponentially weighted average ``sum_i w_i a_i / sum_i w_i``, ``w_i = exp(-m i)``
        over the chunks that cover this step, oldest first. Call :meth:`reset` between episodes.
        """
        frame, torch_seen, batched = self._read(observation, ())
        batch = int(next(iter(frame.values())).shape[0])
        if self._batch is not None and batch != self._batch:
            raise ObservationError(
                f"this episode runs {self._batch} environment(s) but the observation has {batch}; call reset() first"
            )
        self._batch = batch
        self._history.append(frame)
        self._seen += 1
        if self.temporal_ensemble is not None:
            action = self._ensembled(steps)
        else:
            if not self._queue:
                chunk = self._sample(self.normalize_observation(self._history_batch()), steps, None, None)
                self._queue.extend(chunk[:, i] for i in range(min(self.action_steps, self.horizon)))
            action = self._queue.popleft()
        action = action.cpu()
        if not batched:
            action = action[0]
        return action if torch_seen else action.numpy()

    def _ensembled(self, steps: int | None) -> torch.Tensor:
        assert self.temporal_ensemble is not None
        chunk = self._sample(self.normalize_observation(self._history_batch()), steps, None, None)
        self._chunks.append((self._t, chunk))
        while self._chunks and self._t - self._chunks[0][0] >= self.horizon:
            self._chunks.popleft()
        weights = [math.exp(-self.temporal_ensemble * i) for i in range(len(self._chunks))]
        total = sum(weights)
        action = sum(w * c[:, self._t - start] for w, (start, c) in zip(weights, self._chunks, strict=True))
        self._t += 1
        assert isinstance(action, torch.Tensor)
        return action / total
