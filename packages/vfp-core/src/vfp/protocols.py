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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

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
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def action_dim(self) -> int:
        return int(self.features["action"].shape[-1])

    def keys(self, role: str) -> list[str]:
        return [key for key, info in self.features.items() if info.role == role]


@runtime_checkable
class DataModule(Protocol):
    """The object a ``dataloader`` component builds."""

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
