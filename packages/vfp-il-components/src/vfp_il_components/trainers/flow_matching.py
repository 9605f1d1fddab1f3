"""The ``naive_flow_matching_policy`` trainer: conditional flow matching on action chunks."""

from __future__ import annotations

import torch

from vfp.engine import LossOutput, TrainerContext
from vfp.protocols import Batch
from vfp_il_components.flow import (
    FlowNet,
    flow_regression,
    reflow_teacher,
    sample_flow,
    step_features,
    step_input_dim,
    training_pair,
)
from vfp_il_components.trainers._sampling import ChunkSampling, source_noise
from vfp_il_components.trainers.flow_matching_config import NaiveFlowMatchingConfig

__all__ = ["NaiveFlowMatchingTrainer"]


class NaiveFlowMatchingTrainer(ChunkSampling):
    """Learns a velocity field ``v(x_t, t, o)`` whose flow carries Gaussian noise to action chunks.

    Training regresses ``v`` onto ``A - x0`` at ``x_t = (1 - t) x0 + t A`` (loss ``flow``); sampling
    integrates ``v`` from noise with N Euler or Heun steps. With few steps the sample tends to the
    conditional mean of the actions, which averages the modes of a multi-modal task. ``flow.prediction:
    endpoint``, ``flow.shortcut`` and ``flow.mean_flow`` change what the network outputs and how it is trained
    and integrated (:func:`vfp_il_components.flow.flow_regression`); a shortcut or mean-flow network also sees
    the step size. With
    ``flow.distill`` the pairs come from a teacher policy (reflow, :class:`~vfp_il_components.flow.ReflowTeacher`).
    """

    def __init__(self, config: NaiveFlowMatchingConfig, context: TrainerContext) -> None:
        self.config = config
        self.context = context
        info = context.info
        self.horizon, self.action_dim = info.horizon, info.action_dim
        self.obs_encoder = context.build_model("obs_encoder", info=info)
        cond_dim = int(getattr(self.obs_encoder, "out_dim"))  # noqa: B009 - an nn.Module attribute
        self.velocity = context.build_model(
            "velocity",
            action_dim=self.action_dim,
            horizon=self.horizon,
            cond_dim=cond_dim + step_input_dim(config.flow),
            time_input=True,
        )
        self.flow_loss = context.build_loss("flow")
        self.teacher = reflow_teacher(context, config.flow)

    def flow_net(self, cond: torch.Tensor) -> FlowNet:
        """The network as a :data:`~vfp_il_components.flow.FlowNet` for observation features ``cond`` (B, C)."""

        def net(x: torch.Tensor, t: torch.Tensor, d: torch.Tensor | None, rows: slice) -> torch.Tensor:
            c = cond[rows]
            if d is not None:
                c = torch.cat([c, step_features(d).to(c.dtype)], dim=-1)
            out: torch.Tensor = self.velocity(x, c, t)
            return out

        return net

    def compute_losses(self, batch: Batch) -> LossOutput:
        x0, actions, is_pad = training_pair(batch, self.config.flow, self.teacher)
        cond = self.obs_encoder(batch)
        predicted, target = flow_regression(self.config.flow, self.flow_net(cond), actions, x0)
        return LossOutput({"flow": self.flow_loss(predicted, target, is_pad)})

    def _sample(
        self, observation: Batch, steps: int, generator: torch.Generator | None, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        cond = self.obs_encoder(observation)
        shape = (cond.shape[0], self.horizon, self.action_dim)
        x0 = source_noise(shape, cond.device, self.config.flow.noise_std, generator, noise)
        return sample_flow(self.config.flow, self.flow_net(cond), x0, steps)
