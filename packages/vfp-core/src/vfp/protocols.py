"""What the engine expects of each kind of component's implementation.

A component's ``target`` names a callable; the engine calls it with the component's validated
config (and, per kind, the arguments below) and uses what it returns through these protocols.
This module imports no torch at run time.

- ``dataloader``: ``target(config) -> DataModule``
- ``loss``: ``target(config) -> torch.nn.Module``; calling it returns a scalar tensor, or a mapping of
  named scalar tensors, already multiplied by ``config.weight``.
- ``optimizer``: ``target(config, param_groups, total_steps) -> OptimizerBundle``
- ``model``: ``target(config, **dims) -> torch.nn.Module`` (the trainer passes the dimensions)
- ``callback``: ``target(config) -> object`` implementing any lifecycle hooks with ``@vfp.hookimpl``
- ``trainer``: see ``vfp.engine`` (``target(config, context) -> Trainer``)

Model roles (:class:`FeatureEncoder`, :class:`LatentHead`) name what trainers rely on in the model
components they build, so that the type checker sees it (``feature_encoder(module, name).out_dim``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    from torch.utils.data import Dataset

Batch = dict[str, "torch.Tensor"]
"""A batch: ``action`` (B, H, A), ``action_is_pad`` (B, H), ``observation.<key>`` (B, T, ...), and
``observation.<key>_is_pad`` (B, T) for the history, all normalized by the data module."""

NormalizationStats = dict[str, dict[str, "torch.Tensor"]]
"""Per feature (``action``, ``observation.state``, ...): ``mean``, ``std``, ``min``, ``max`` tensors."""


@dataclass(frozen=True)
class FeatureInfo:
    """Shape (per time step) and role of one feature in the batches."""

    key: str
    shape: tuple[int, ...]
    role: str
    """``state`` (low-dimensional), ``image`` (float CHW in [0, 1]) or ``action``."""


_TYPED_EXTRA_KEYS: Final = ("task_options", "normalization", "fps", "train_episodes", "val_episodes")
"""Keys of the 1.0 ``DataInfo.extra`` mapping that are typed fields since contract 1.1."""


@dataclass(frozen=True)
class DataInfo:
    """What a trainer needs to size its networks, and what evaluation needs to know."""

    features: Mapping[str, FeatureInfo]
    history: int
    """Observation steps per sample (``observation.*`` have this many steps)."""
    horizon: int
    """Action-chunk length (``action`` has this many steps)."""
    task: str | None = None
    """Name of the synthetic task the data comes from, if any (enables closed-loop evaluation)."""
    task_options: Mapping[str, Any] = field(default_factory=dict)
    """Constructor options of that task as the data was generated with (empty: the task's defaults)."""
    normalization: Mapping[str, str] = field(default_factory=dict)
    """How each normalized feature was normalized (``mean_std``, ``min_max`` or ``none``), by key."""
    fps: float | None = None
    """Control frequency of the recorded episodes, when known."""
    train_episodes: int | None = None
    """Episodes in the training split, when the data is episodic."""
    val_episodes: int | None = None
    """Episodes in the held-out split, when the data is episodic."""
    source: Mapping[str, Any] = field(default_factory=dict)
    """Free-form description of where the data comes from (``format``, ``path``, ``repo_id``, ...)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Deprecated since contract 1.1: pass the typed fields above (and ``source``) instead.

    Still accepted: its keys that are typed fields fill those fields, the others go to ``source``
    (with a ``DeprecationWarning``). Read as a combined view of ``source`` and the typed fields, so a
    1.0 trainer reading ``info.extra["normalization"]`` keeps working."""

    def __post_init__(self) -> None:
        if self.extra and not isinstance(self.extra, MappingProxyType):  # not the view of a DataInfo
            warnings.warn(
                "DataInfo(extra=...) is deprecated since vfp contract 1.1: pass the typed fields "
                f"({', '.join(_TYPED_EXTRA_KEYS)}) and put free-form values in source=...",
                DeprecationWarning,
                stacklevel=3,
            )
            given = dict(self.extra)
            for key in _TYPED_EXTRA_KEYS:
                if key in given:
                    value = given.pop(key)
                    if not getattr(self, key):
                        object.__setattr__(self, key, dict(value) if isinstance(value, Mapping) else value)
            object.__setattr__(self, "source", {**given, **self.source})
        view: dict[str, Any] = dict(self.source)
        view.update({key: getattr(self, key) for key in _TYPED_EXTRA_KEYS if getattr(self, key) is not None})
        object.__setattr__(self, "extra", MappingProxyType(view))

    @property
    def action_dim(self) -> int:
        return int(self.features["action"].shape[-1])

    def keys(self, role: str) -> list[str]:
        return [key for key, info in self.features.items() if info.role == role]


@runtime_checkable
class DataModule(Protocol):
    """The object a ``dataloader`` component builds.

    Optional (contract 1.1): a data module that also has ``transfer_collate_fn`` (collation only,
    images still uint8) and ``prepare_batch(batch) -> batch`` (uint8 to float, augmentation) gets its
    training batches collated with the first and finished by the second once they are on the run's
    device, so images cross to the device as uint8. ``collate_fn`` must still give finished batches
    (validation and evaluation use it).
    """

    batch_size: int
    num_workers: int

    def setup(self) -> None:
        """Do the heavy work once (open files, compute statistics, split episodes)."""

    @property
    def info(self) -> DataInfo: ...

    @property
    def train_dataset(self) -> Dataset[Any]:
        """Map-style dataset of windows; may implement ``__getitems__(indices)`` for vectorized batches.

        ``indices`` is a 1-D int64 tensor when the engine fetches in-process (``num_workers == 0``)
        and a list of ints from DataLoader workers; accept both.
        """
        ...

    @property
    def val_dataset(self) -> Dataset[Any] | None: ...

    @property
    def collate_fn(self) -> Callable[[Any], Batch]:
        """Collate for torch's DataLoader (receives ``__getitems__``'s output when defined)."""
        ...

    def normalization_stats(self) -> NormalizationStats:
        """Statistics used to normalize batches; saved with checkpoints to unnormalize actions."""
        ...


@dataclass
class OptimizerBundle:
    """What an ``optimizer`` component builds for its parameter groups."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    """Stepped by the engine once per optimizer step; saved in checkpoints."""
    schedule_free: bool = False
    """True when the optimizer has ``train()``/``eval()`` modes (schedulefree); the engine switches
    it to eval mode for evaluation and checkpointing so saved weights are the averaged ones."""


ParamGroups = Sequence[dict[str, Any]]
"""Parameter groups as torch expects them, each with ``params`` and ``name`` (the model component)."""


# model roles: what trainers rely on in the model components they build ---------------------------
@runtime_checkable
class FeatureEncoder(Protocol):
    """The role of an observation encoder: ``observation.<key>`` tensors in, features ``(B, out_dim)`` out.

    A trainer that sizes the next component from the encoder reads ``out_dim``; check a built
    component with :func:`feature_encoder`.
    """

    out_dim: int
    """Size of the feature vector it returns."""

    def __call__(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor: ...


@runtime_checkable
class GaussianLatent(Protocol):
    """A batch of diagonal Gaussians over a latent, as a Gaussian latent head returns it."""

    mean: torch.Tensor
    """``(B, latent_dim)``."""
    log_var: torch.Tensor
    """``(B, latent_dim)``."""

    def rsample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """A reparameterized sample ``(B, latent_dim)``."""
        ...


@runtime_checkable
class LatentHead(Protocol):
    """The role of a prior or posterior over a latent.

    Called with the condition features (and, for a posterior, the action chunk), it returns a
    :class:`GaussianLatent` or the logits ``(B, num_classes)`` of a categorical latent.
    """

    def __call__(
        self, cond: torch.Tensor | None = None, actions: torch.Tensor | None = None
    ) -> GaussianLatent | torch.Tensor: ...


def _missing(module: object, names: Sequence[str]) -> list[str]:
    return [name for name in names if not hasattr(module, name)]


def feature_encoder(module: object, component: str) -> FeatureEncoder:
    """``module`` typed as a :class:`FeatureEncoder`; a clear error naming ``component`` if it is not one."""
    if not isinstance(module, FeatureEncoder):
        lacks = ", ".join(_missing(module, ("out_dim", "__call__")))
        raise TypeError(
            f"model component {component!r} ({type(module).__name__}) is used as an observation encoder "
            f"but lacks {lacks}: its model must set `out_dim` (the feature size it returns)"
        )
    return module


def latent_head(module: object, component: str) -> LatentHead:
    """``module`` typed as a :class:`LatentHead`; a clear error naming ``component`` if it is not callable."""
    if not isinstance(module, LatentHead):
        raise TypeError(f"model component {component!r} ({type(module).__name__}) is not callable")
    return module
