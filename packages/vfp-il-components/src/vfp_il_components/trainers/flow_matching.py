"""The ``naive_flow_matching_policy`` trainer: conditional flow matching on action chunks."""

from __future__ import annotations

import torch

from vfp.engine import EvaluationRequest, LossOutput, TrainerContext
from vfp.protocols import Batch
from vfp_il_components.trainers.common import (
    ACTION_KEY,
    evaluate_policy,
    integrate,
    sample_noise,
    sample_times,
    straight_path,
)
from vfp_il_components.trainers.specs import NaiveFlowMatchingConfig

__all__ = ["NaiveFlowMatchingTrainer"]


class NaiveFlowMatchingTrainer:
    """Learns a velocity field ``v(x_t, t, o)`` whose flow carries Gaussian noise to action chunks.

    Training regresses ``v`` onto ``A - x0`` at ``x_t = (1 - t) x0 + t A`` (loss ``flow``); sampling
    integrates ``v`` from noise with N Euler or Heun steps. With few steps the sample tends to the
    conditional mean of the actions, which averages the modes of a multi-modal task.
    """

    def __init__(self, config: NaiveFlowMatchingConfig, context: TrainerContext) -> None:
        self.config = config
        self.context = context
        info = context.info
        self.horizon, self.action_dim = info.horizon, info.action_dim
        self.obs_encoder = context.build_model("obs_encoder", info=info)
        cond_dim = int(getattr(self.obs_encoder, "out_dim"))  # noqa: B009 - an nn.Module attribute
        self.velocity = context.build_model(
            "velocity", action_dim=self.action_dim, horizon=self.horizon, cond_dim=cond_dim, time_input=True
        )
        self.flow_loss = context.build_loss("flow")

    def compute_losses(self, batch: Batch) -> LossOutput:
        actions = batch[ACTION_KEY]
        cond = self.obs_encoder(batch)
        x0 = sample_noise(tuple(actions.shape), actions.device, self.config.flow.noise_std)
        t = sample_times(self.config.flow, actions.shape[0], actions.device)
        x_t, target = straight_path(x0, actions, t)
        predicted = self.velocity(x_t, cond, t)
        return LossOutput({"flow": self.flow_loss(predicted, target, batch.get(f"{ACTION_KEY}_is_pad"))})

    def _sample(self, observation: Batch, steps: int, generator: torch.Generator | None) -> torch.Tensor:
        cond = self.obs_encoder(observation)
        x0 = sample_noise(
            (cond.shape[0], self.horizon, self.action_dim), cond.device, self.config.flow.noise_std, generator
        )
        return integrate(lambda x, t: self.velocity(x, cond, t), x0, steps, self.config.flow.integrator)

    @torch.no_grad()
    def sample_actions(self, observation: Batch, steps: int | None = None) -> torch.Tensor:
        """Normalized action chunks ``(B, horizon, action_dim)`` from ``steps`` integration steps."""
        return self._sample(observation, steps or self.config.flow.num_steps, None)

    @torch.no_grad()
    def evaluate(self, request: EvaluationRequest) -> dict[str, float]:
        """Closed-loop task metrics (or offline metrics) at ``request.steps`` integration steps."""
        return evaluate_policy(self.context, self.config.evaluation, request, self._sample, self.config.flow.num_steps)
