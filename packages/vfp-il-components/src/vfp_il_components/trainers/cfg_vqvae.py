"""The ``cfg_vqvae_flow_matching`` trainer: flow matching on VQ codes of the chunk with classifier-free guidance.

A VQ posterior encodes the action chunk (and the observation) into one of K discrete codes; a
categorical prior p(c | o) learns, by cross-entropy, to predict the posterior's code from the
observation; a flow decoder v(x_t, t, o, c) learns the velocity of the straight path towards the chunk.
The code is dropped (replaced by zeros and a keep flag of 0) with a probability that follows a
schedule, so the same decoder also learns the unconditional velocity v(x_t, t, o). Sampling draws a
code from the prior and integrates the guided velocity ``v_u + w (v_c - v_u)``, the conditional and the
unconditional passes evaluated together in one batched forward. With ``flow.prediction: endpoint`` the
decoder outputs the chunk (guidance then mixes the two predicted chunks, which is the same as mixing the
derived velocities); with ``flow.shortcut`` it also sees the step size, appended to its condition. With
``flow.distill`` (reflow) the teacher's chunk stands for the demonstration: the encoder codes it, the prior
learns its code and the decoder learns the straight path from the noise the teacher started from; the
teacher's own guidance is in its chunks, so sample the student with ``guidance_scale: 1.0``.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F

from vfp.engine import EvaluationRequest, LossOutput, TrainerContext
from vfp.protocols import Batch
from vfp_il_components.flow import (
    ACTION_KEY,
    FlowNet,
    flow_regression,
    observation_of,
    reflow_teacher,
    sample_flow,
    sample_noise,
    sample_times,
    step_features,
    step_input_dim,
    training_pair,
)
from vfp_il_components.models.vq import VQCodebook, perplexity
from vfp_il_components.trainers._sampling import ChunkSampling, source_noise
from vfp_il_components.trainers.cfg_vqvae_config import CfgVqvaeFlowMatchingConfig, CodeDropoutSchedule

__all__ = ["CfgVqvaeFlowMatchingTrainer", "code_dropout_probability", "draw_codes"]


def code_dropout_probability(schedule: CodeDropoutSchedule, step: int) -> float:
    """Probability of dropping the code at optimizer step ``step`` (see :class:`CodeDropoutSchedule`)."""
    if step < schedule.start_step:
        return schedule.start
    if schedule.ramp_steps == 0:
        return schedule.end
    progress = min(1.0, (step - schedule.start_step) / schedule.ramp_steps)
    if schedule.shape == "cosine":
        progress = 0.5 * (1.0 - math.cos(math.pi * progress))
    return schedule.start + (schedule.end - schedule.start) * progress


def draw_codes(logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Code indices ``(B,)`` from ``softmax(logits / temperature)`` (temperature 0: the argmax).

    With a (CPU) ``generator`` the draw happens on the CPU, so it is reproducible on any device.
    """
    if temperature < 0:
        raise ValueError(f"prior temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = (logits.float() / temperature).softmax(dim=-1)
    if generator is not None:
        return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(logits.device)
    return torch.multinomial(probs, 1).squeeze(-1)


class CfgVqvaeFlowMatchingTrainer(ChunkSampling):
    """Trainer of ``cfg_vqvae_flow_matching`` (see the module docstring and ``CfgVqvaeFlowMatchingConfig``).

    Loss terms: ``flow`` (velocity regression), ``commitment`` (and ``codebook`` with a loss-updated
    codebook) from the VQ codebook, ``prior`` (cross-entropy of p(c | o) on the posterior's codes).
    Metrics: ``perplexity`` and ``usage`` of the codebook on the batch, ``restarted`` codes,
    ``code_dropout`` (the scheduled probability), ``prior_accuracy``.
    """

    def __init__(self, config: CfgVqvaeFlowMatchingConfig, context: TrainerContext) -> None:
        self.config = config
        self.context = context
        info = context.info
        self.horizon, self.action_dim = info.horizon, info.action_dim
        self.obs_encoder = context.build_model("obs_encoder", info=info)
        self.obs_dim = int(cast(int, self.obs_encoder.out_dim))
        chunk_dim = self.horizon * self.action_dim
        encoder_in = chunk_dim + (self.obs_dim if config.encode_observation else 0)
        self.action_encoder = context.build_model("action_encoder", in_dim=encoder_in, out_dim=config.code_dim)
        self.codebook = cast(VQCodebook, context.build_model("codebook", latent_dim=config.code_dim))
        self.num_codes = self.codebook.num_codes
        self.prior = context.build_model("prior", num_classes=self.num_codes, cond_dim=self.obs_dim)
        self.decoder = context.build_model(
            "decoder",
            action_dim=self.action_dim,
            horizon=self.horizon,
            cond_dim=self.obs_dim + config.code_dim + 1 + step_input_dim(config.flow),
            time_input=True,
        )
        self.flow_loss = context.build_loss("flow")
        self.teacher = reflow_teacher(context, config.flow)

    # -- pieces -----------------------------------------------------------------------------------

    def encode(self, obs_feature: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Continuous code vectors ``z_e`` ``(B, code_dim)`` of the chunks (before quantization)."""
        parts = [actions.flatten(1)]
        if self.config.encode_observation:
            parts.append(obs_feature)
        encoded: torch.Tensor = self.action_encoder(torch.cat(parts, dim=-1))
        return encoded

    def decoder_condition(
        self, obs_feature: torch.Tensor, code: torch.Tensor, keep: torch.Tensor, d: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[o, keep * code, keep]``: ``keep`` (B,) is 1 for the conditional and 0 for the unconditional pass.

        With ``flow.shortcut`` the step-size features of ``d`` (B,) follow (required then).
        """
        keep = keep.to(code.dtype).reshape(-1, 1)
        parts = [obs_feature, code * keep, keep]
        if d is not None:
            parts.append(step_features(d).to(code.dtype))
        return torch.cat(parts, dim=-1)

    def guided_velocity(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        obs_feature: torch.Tensor,
        code: torch.Tensor,
        scale: float,
        d: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``v_u + scale (v_c - v_u)`` from ONE decoder forward on the stacked conditional and unconditional rows.

        ``scale`` 1 is the conditional velocity (the unconditional pass is then skipped), 0 the unconditional one.
        The same mix of the decoder's outputs with ``flow.prediction: endpoint`` (chunks) or ``flow.shortcut``
        (average velocities over a step ``d``).
        """
        batch = x.shape[0]
        ones = torch.ones(batch, device=x.device, dtype=code.dtype)
        if scale == 1.0:
            conditional: torch.Tensor = self.decoder(x, self.decoder_condition(obs_feature, code, ones, d), t)
            return conditional
        cond = torch.cat(
            [
                self.decoder_condition(obs_feature, code, ones, d),
                self.decoder_condition(obs_feature, code, torch.zeros_like(ones), d),
            ]
        )
        both: torch.Tensor = self.decoder(torch.cat([x, x]), cond, torch.cat([t, t]))
        v_cond, v_uncond = both[:batch], both[batch:]
        return v_uncond + scale * (v_cond - v_uncond)

    def code_dropout(self) -> float:
        """The code dropout probability at the current training step."""
        return code_dropout_probability(self.config.code_dropout, self.context.step)

    # -- trainer protocol ----------------------------------------------------------------------------

    def compute_losses(self, batch: Batch) -> LossOutput:
        x0, actions, is_pad = training_pair(batch, self.config.flow, self.teacher)
        size = actions.shape[0]
        obs_feature = self.obs_encoder(batch)
        vq = self.codebook(self.encode(obs_feature, actions))
        drop = self.code_dropout()
        keep = (torch.rand(size, device=actions.device) >= drop).to(actions.dtype)
        if x0 is None:
            x0 = sample_noise(tuple(actions.shape), actions.device, self.config.flow.noise_std)
        t = sample_times(self.config.flow, size, actions.device)
        quantized = vq.quantized

        def net(x: torch.Tensor, time: torch.Tensor, d: torch.Tensor | None, rows: slice) -> torch.Tensor:
            out: torch.Tensor = self.decoder(
                x, self.decoder_condition(obs_feature[rows], quantized[rows], keep[rows], d), time
            )
            return out

        predicted, target = flow_regression(self.config.flow, net, actions, x0, t)
        codes = vq.indices.detach()
        logits = self.prior(cond=obs_feature)
        terms = {
            "flow": self.flow_loss(predicted, target, is_pad),
            "prior": self.config.prior_weight * F.cross_entropy(logits.float(), codes),
            **vq.losses,
        }
        metrics: dict[str, float | torch.Tensor] = {
            **{key: value.detach() for key, value in vq.metrics.items()},
            "code_dropout": drop,
            "prior_accuracy": (logits.detach().argmax(dim=-1) == codes).float().mean(),
        }
        return LossOutput(terms, metrics)

    def _sample(
        self, observation: Batch, steps: int, generator: torch.Generator | None, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        obs_feature = self.obs_encoder(observation)
        codes = draw_codes(self.prior(cond=obs_feature), self.config.prior_temperature, generator)
        code = self.codebook.lookup(codes).to(obs_feature.dtype)
        shape = (obs_feature.shape[0], self.horizon, self.action_dim)
        x0 = source_noise(shape, obs_feature.device, self.config.flow.noise_std, generator, noise)
        return sample_flow(self.config.flow, self.guided_net(obs_feature, code), x0, steps)

    def guided_net(self, obs_feature: torch.Tensor, code: torch.Tensor) -> FlowNet:
        """The guided decoder (``guidance_scale``) as a :data:`~vfp_il_components.flow.FlowNet` for fixed codes."""
        scale = self.config.guidance_scale

        def net(x: torch.Tensor, t: torch.Tensor, d: torch.Tensor | None, rows: slice) -> torch.Tensor:
            return self.guided_velocity(x, t, obs_feature[rows], code[rows], scale, d)

        return net

    @torch.no_grad()
    def evaluate(self, request: EvaluationRequest) -> dict[str, float]:
        """Policy metrics (closed loop on the task, or offline) plus codebook use on the held-out batches.

        ``codebook_perplexity`` and ``codebook_usage`` count the posterior's codes over the whole held-out
        split; ``prior_accuracy`` is how often the prior's most likely code is the posterior's.
        """
        metrics = super().evaluate(request)
        counts = torch.zeros(self.num_codes, dtype=torch.float64)
        hits, total = 0, 0
        for batch in request.batches():
            obs_feature = self.obs_encoder(observation_of(batch))
            codes = self.codebook(self.encode(obs_feature, batch[ACTION_KEY])).indices
            counts += torch.bincount(codes.cpu(), minlength=self.num_codes).double()
            hits += int((self.prior(cond=obs_feature).argmax(dim=-1) == codes).sum())
            total += int(codes.numel())
        if total:
            metrics["codebook_perplexity"] = float(perplexity(counts))
            metrics["codebook_usage"] = float((counts > 0).double().mean())
            metrics["prior_accuracy"] = hits / total
        metrics["guidance_scale"] = self.config.guidance_scale
        return metrics
