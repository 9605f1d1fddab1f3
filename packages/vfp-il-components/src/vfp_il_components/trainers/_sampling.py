"""What the flow trainers share at inference: ``sample_actions`` and ``evaluate`` from their ``_sample``."""

from __future__ import annotations

from typing import Any

import torch

from vfp.engine import EvaluationRequest, TrainerContext
from vfp.protocols import Batch
from vfp_il_components.evaluation import evaluate_policy
from vfp_il_components.flow import sample_noise


def source_noise(
    shape: tuple[int, ...],
    device: torch.device,
    std: float,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """The source ``x0``: ``std`` times the given standard-normal ``noise``, else drawn with ``generator``."""
    if noise is not None:
        return std * noise.to(device, torch.float32)
    return sample_noise(shape, device, std, generator)


class ChunkSampling:
    """Mixin of the flow trainers: the policy methods the engine calls, from the trainer's ``_sample``."""

    config: Any
    context: TrainerContext

    def _sample(
        self, observation: Batch, steps: int, generator: torch.Generator | None, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def sample_actions(
        self,
        observation: Batch,
        steps: int | None = None,
        *,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Normalized action chunks ``(B, horizon, action_dim)`` from ``steps`` integration steps (``flow.num_steps``).

        ``generator`` (a seeded CPU generator) draws the trainer's latent or code first, if it has one, then the
        source noise unless ``noise`` (standard normal ``(B, horizon, action_dim)``, scaled by ``flow.noise_std``)
        is given; None: the global stream.
        """
        return self._sample(observation, steps or self.config.flow.num_steps, generator, noise)

    @torch.no_grad()
    def evaluate(self, request: EvaluationRequest) -> dict[str, float]:
        """Closed-loop task metrics (or offline metrics) at ``request.steps`` integration steps."""
        return evaluate_policy(self.context, self.config.evaluation, request, self._sample, self.config.flow.num_steps)
