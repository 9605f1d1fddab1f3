"""What a loaded policy says about itself (``Policy.metadata``, ``policy.json``, the server's first frame).

Plain data only (no torch): the server sends it as its metadata frame and clients read it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

__all__ = ["EXPORT_FORMAT", "FeatureSpec", "PolicyMetadata"]

EXPORT_FORMAT: Final = "vfp-policy/1"
"""Format of an exported policy folder (``policy.json``'s ``format``)."""


@dataclass(frozen=True)
class FeatureSpec:
    """One feature of the data the policy was trained on: its per-step shape and role.

    ``role`` is ``state`` (low-dimensional), ``image`` (given as uint8 HWC or float CHW in [0, 1])
    or ``action``. ``shape`` is the shape in the training batches (images: ``(C, H, W)``).
    """

    shape: tuple[int, ...]
    role: str


@dataclass(frozen=True)
class PolicyMetadata:
    """Features with shapes and roles, history, horizon, action steps, fps, trainer, versions, metrics."""

    trainer: str
    features: Mapping[str, FeatureSpec]
    history: int
    """Observation steps the policy sees (``predict_chunk`` takes ``(B, history, ...)`` per key)."""
    horizon: int
    """Actions per predicted chunk."""
    action_steps: int
    """Actions of each chunk that ``act`` executes before querying the model again."""
    fps: float | None
    """Control frequency of the data, when the dataset records one."""
    step: int
    """Training step of the weights."""
    weights: str
    """``ema`` or ``models``: which weights of the checkpoint the policy uses."""
    normalization: Mapping[str, str]
    """Normalization mode per low-dimensional key (``mean_std``, ``min_max`` or ``none``)."""
    integration_steps: int | None = None
    """The trainer's default number of integration steps (``steps=None``), when its config has one."""
    task: str | None = None
    """The synthetic task the data came from, if any."""
    contract_version: str = ""
    distributions: Mapping[str, str] = field(default_factory=dict)
    """Plugin distributions and versions the policy was trained with (``{}`` when not recorded)."""
    git: Mapping[str, Any] | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    """Evaluation metrics of the checkpoint's step (from the run's ``metrics.jsonl``), if any."""
    source: str = ""
    """Where the policy was loaded from."""

    @property
    def action_dim(self) -> int:
        return int(self.features["action"].shape[-1])

    @property
    def observation_keys(self) -> list[str]:
        """The observation keys a request must carry (``observation.state``, ``observation.images.front``)."""
        return [key for key, spec in self.features.items() if spec.role != "action"]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (tuples as lists)."""
        data = asdict(self)
        data["features"] = {key: {"shape": list(f.shape), "role": f.role} for key, f in self.features.items()}
        data["action_dim"] = self.action_dim
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyMetadata:
        """Inverse of :meth:`to_dict` (unknown keys are ignored, so newer files stay readable)."""
        features = {
            key: FeatureSpec(tuple(int(n) for n in spec["shape"]), str(spec["role"]))
            for key, spec in data["features"].items()
        }
        names = {f for f in cls.__dataclass_fields__ if f != "features"}
        values = {key: value for key, value in data.items() if key in names}
        return cls(features=features, **values)
