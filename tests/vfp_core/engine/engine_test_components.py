"""A test-local trainer with two model components, for per-component init, freeze and optimizers."""

from __future__ import annotations

import torch
from pydantic import Field

from vfp import ComponentConfig
from vfp.engine import EvaluationRequest, LossOutput, TrainerContext
from vfp.protocols import Batch


class TwoPartTrainerConfig(ComponentConfig):
    width: int = Field(3, ge=1)


class TwoPartTrainer:
    """``head(encoder(x))`` fitted with loss ``fit``; reports the evaluation request's ``steps``."""

    def __init__(self, config: TwoPartTrainerConfig, context: TrainerContext) -> None:
        in_dim = context.info.features["observation.state"].shape[0]
        self.encoder = context.build_model("encoder", in_dim=in_dim, out_dim=config.width)
        self.head = context.build_model("head", in_dim=config.width, out_dim=context.info.action_dim)
        self.fit = context.build_loss("fit")

    def _predict(self, observation: Batch) -> torch.Tensor:
        prediction: torch.Tensor = self.head(self.encoder(observation["observation.state"][:, -1]))
        return prediction.unsqueeze(1)

    def compute_losses(self, batch: Batch) -> LossOutput:
        return LossOutput({"fit": self.fit(self._predict(batch), batch["action"])})

    def sample_actions(self, observation: Batch, steps: int | None = None) -> torch.Tensor:
        return self._predict(observation)

    def evaluate(self, request: EvaluationRequest) -> dict[str, float]:
        return {"steps_seen": float(request.steps if request.steps is not None else -1)}
