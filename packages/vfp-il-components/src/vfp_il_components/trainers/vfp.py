"""The ``variational_flow_matching_policy`` and ``vfp_single_expert`` trainers.

VFP ("Variational Flow-Matching Policy for Multi-Modal Robot Manipulation", arXiv 2508.01622):

- training: a posterior q(z | o, A) encodes the demonstrated chunk's mode into a latent z; a flow
  decoder (a mixture of experts, every expert conditioned on [o, z], routed by a gate on [o, z] with
  top-k and temperature) regresses the straight-path velocity ``A - x0``; a KL term
  ``beta * KL(q(z|o,A) || p(z|o))`` trains a **stochastic** prior p(z | o) (a diagonal Gaussian or a
  categorical), never a deterministic regression onto the posterior (which learns the average latent
  and collapses the modes); optionally a Sinkhorn term aligns one-step chunks generated from
  z ~ p(z|o) with the expert chunks (jointly with the observation state when the loss has a
  ``state_weight``), and ``moe_gating`` balances the experts.
- inference: z ~ p(z | o), route to the experts, integrate N Euler or Heun steps from noise.
- few-step options (``flow.prediction: endpoint``, ``flow.shortcut``, ``flow.mean_flow``): the decoder
  outputs the chunk, or also sees the step size (appended to the observation feature it is conditioned
  on); the alignment term then aligns the option's own one-step chunks (``alignment_steps``: N-step chunks
  of the evaluation sampler; ``alignment_start_step`` and ``alignment_warmup_steps``: its weight schedule).
- reflow distillation (``flow.distill``): the teacher's chunk stands for the demonstration (the posterior
  encodes it, the KL and the alignment see it) and the decoder learns the straight path from the noise the
  teacher started from; the teacher draws its own latent from its own prior.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vfp.engine import LossOutput, MetricValue, TrainerContext
from vfp.protocols import Batch
from vfp_il_components.flow import (
    FlowNet,
    flow_regression,
    one_step,
    reflow_teacher,
    sample_flow,
    sample_noise,
    sample_times,
    step_features,
    step_input_dim,
    training_pair,
)
from vfp_il_components.models.latent import DiagonalGaussian, gumbel_softmax, sample_categorical
from vfp_il_components.trainers._sampling import ChunkSampling, source_noise
from vfp_il_components.trainers.vfp_config import VFPSingleExpertConfig

__all__ = ["LatentDistribution", "VariationalFlowMatchingTrainer"]

LatentDistribution = DiagonalGaussian | torch.Tensor
"""A Gaussian over z, or the logits (B, K) of a categorical over K classes."""


def _categorical_kl(logits_q: torch.Tensor, logits_p: torch.Tensor) -> torch.Tensor:
    log_q, log_p = logits_q.float().log_softmax(-1), logits_p.float().log_softmax(-1)
    return (log_q.exp() * (log_q - log_p)).sum(-1)


class VariationalFlowMatchingTrainer(ChunkSampling):
    """VFP (``experts > 1``, with a gate) or VFP single expert (one expert, no gate).

    Public helpers used by tests and analysis: :meth:`encode_observation`, :meth:`prior`,
    :meth:`posterior`, :meth:`sample_latent` and :meth:`decode`.
    """

    def __init__(self, config: VFPSingleExpertConfig, context: TrainerContext) -> None:
        self.config = config
        self.context = context
        info = context.info
        self.horizon, self.action_dim = info.horizon, info.action_dim
        self.latent_dim = config.latent.dim
        self.num_experts = config.num_experts
        self.categorical = context.config.model["prior"].arch.type == "categorical_head"

        self.obs_encoder = context.build_model("obs_encoder", info=info)
        cond_dim = int(getattr(self.obs_encoder, "out_dim"))  # noqa: B009 - an nn.Module attribute
        size = {"num_classes" if self.categorical else "latent_dim": self.latent_dim}
        chunk = {"action_dim": self.action_dim, "horizon": self.horizon}
        self.posterior_net = context.build_model("posterior", cond_dim=cond_dim, **chunk, **size)
        self.prior_net = context.build_model("prior", cond_dim=cond_dim, **size)
        self.gate = (
            context.build_model("gate", cond_dim=cond_dim + self.latent_dim, num_experts=self.num_experts)
            if self.num_experts > 1
            else None
        )
        self.decoder = context.build_model(
            "action_decoder",
            **chunk,
            cond_dim=cond_dim + step_input_dim(config.flow),
            latent_dim=self.latent_dim,
            num_experts=self.num_experts,
        )
        self.flow_loss = context.build_loss("flow")
        self.teacher = reflow_teacher(context, config.flow)
        self.alignment = context.build_loss("alignment") if context.has_loss("alignment") else None
        self.gating = context.build_loss("gating") if self.gate is not None and context.has_loss("gating") else None
        state_keys = info.keys("state")
        self.state_key = state_keys[0] if state_keys else None

    # -- the parts ------------------------------------------------------------------------------
    def encode_observation(self, observation: Batch) -> torch.Tensor:
        """Observation feature ``(B, cond_dim)``."""
        feature: torch.Tensor = self.obs_encoder(observation)
        return feature

    def prior(self, cond: torch.Tensor) -> LatentDistribution:
        """p(z | o): a DiagonalGaussian, or categorical logits (B, K)."""
        out: LatentDistribution = self.prior_net(cond)
        return out

    def posterior(self, cond: torch.Tensor, actions: torch.Tensor) -> LatentDistribution:
        """q(z | o, A): a DiagonalGaussian, or categorical logits (B, K)."""
        out: LatentDistribution = self.posterior_net(cond, actions)
        return out

    def _reparameterized(self, distribution: LatentDistribution) -> torch.Tensor:
        """A differentiable sample (Gaussian rsample, or a straight-through Gumbel-softmax one-hot)."""
        if isinstance(distribution, DiagonalGaussian):
            return distribution.rsample()
        return gumbel_softmax(distribution, tau=self.config.latent.gumbel_temperature, hard=True)

    def sample_latent(
        self, cond: torch.Tensor, generator: torch.Generator | None = None, temperature: float | None = None
    ) -> torch.Tensor:
        """z ~ p(z | o) at inference (``latent.prior_temperature`` unless given): ``(B, latent_dim)``."""
        temperature = self.config.latent.prior_temperature if temperature is None else temperature
        distribution = self.prior(cond)
        if isinstance(distribution, DiagonalGaussian):
            noise = sample_noise(tuple(distribution.mean.shape), cond.device, 1.0, generator)
            return distribution.mean + temperature * distribution.std * noise
        classes = sample_categorical(distribution.detach().float().cpu(), temperature, generator).to(cond.device)
        return F.one_hot(classes, self.latent_dim).to(cond.dtype)

    def _route(self, cond: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor | None, object | None]:
        if self.gate is None:
            return None, None
        output = self.gate(torch.cat([cond, z.to(cond.dtype)], dim=-1))
        return output.weights, output

    def velocity(
        self,
        x: torch.Tensor,
        cond: torch.Tensor,
        t: torch.Tensor,
        z: torch.Tensor,
        weights: torch.Tensor | None,
        d: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Decoder output ``(B, H, A)`` at ``x`` and times ``t`` (B,) given the observation feature and z.

        A velocity by default; the chunk itself with ``flow.prediction: endpoint``; with ``flow.shortcut`` the
        average velocity over a step of size ``d`` (B,) (required then).
        """
        if d is not None:
            cond = torch.cat([cond, step_features(d).to(cond.dtype)], dim=-1)
        out: torch.Tensor = self.decoder(x, cond, t, z=z, weights=weights)
        return out

    def flow_net(self, cond: torch.Tensor, z: torch.Tensor, weights: torch.Tensor | None) -> FlowNet:
        """The decoder as a :data:`~vfp_il_components.flow.FlowNet` for fixed features, latents and routing."""

        def net(x: torch.Tensor, t: torch.Tensor, d: torch.Tensor | None, rows: slice) -> torch.Tensor:
            w = None if weights is None else weights[rows]
            return self.velocity(x, cond[rows], t, z[rows], w, d)

        return net

    def decode(
        self,
        cond: torch.Tensor,
        z: torch.Tensor,
        steps: int,
        generator: torch.Generator | None = None,
        x0: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Integrate the flow from noise (or ``x0``) to normalized action chunks given z."""
        weights, _ = self._route(cond, z)
        if x0 is None:
            shape = (cond.shape[0], self.horizon, self.action_dim)
            x0 = sample_noise(shape, cond.device, self.config.flow.noise_std, generator)
        return sample_flow(self.config.flow, self.flow_net(cond, z, weights), x0, steps)

    # -- training ----------------------------------------------------------------------------------
    def kl_weight(self) -> float:
        """beta at the current step (linear warm-up from 0 over ``latent.kl_warmup_steps``)."""
        latent = self.config.latent
        if latent.kl_warmup_steps == 0:
            return latent.kl_weight
        return latent.kl_weight * min(1.0, (self.context.step + 1) / latent.kl_warmup_steps)

    def _kl(self, q: LatentDistribution, p: LatentDistribution) -> tuple[torch.Tensor, torch.Tensor]:
        """(balanced KL per row for the loss, plain KL per row for logging)."""
        alpha = self.config.latent.kl_balance
        if isinstance(q, DiagonalGaussian) and isinstance(p, DiagonalGaussian):
            plain = q.kl(p)
            balanced = alpha * q.detach().kl(p) + (1.0 - alpha) * q.kl(p.detach())
            return balanced, plain
        assert isinstance(q, torch.Tensor)
        assert isinstance(p, torch.Tensor)
        plain = _categorical_kl(q, p)
        balanced = alpha * _categorical_kl(q.detach(), p) + (1.0 - alpha) * _categorical_kl(q, p.detach())
        return balanced, plain

    def compute_losses(self, batch: Batch) -> LossOutput:
        x0, actions, is_pad = training_pair(batch, self.config.flow, self.teacher)
        cond = self.encode_observation(batch)
        q, p = self.posterior(cond, actions), self.prior(cond)
        z = self._reparameterized(q)

        kl_balanced, kl_plain = self._kl(q, p)
        free = self.config.latent.free_nats
        kl_term = kl_balanced.clamp_min(free) if free > 0 else kl_balanced
        beta = self.kl_weight()

        if x0 is None:
            x0 = sample_noise(tuple(actions.shape), actions.device, self.config.flow.noise_std)
        t = sample_times(self.config.flow, actions.shape[0], actions.device)
        weights, gate_output = self._route(cond, z)
        predicted, target = flow_regression(self.config.flow, self.flow_net(cond, z, weights), actions, x0, t)
        terms: dict[str, torch.Tensor] = {
            "flow": self.flow_loss(predicted, target, is_pad),
            "kl": beta * kl_term.mean(),
        }
        metrics: dict[str, MetricValue] = {"kl_raw": kl_plain.detach().mean(), "beta": beta}
        if self.gating is not None and gate_output is not None:
            gating = self.gating(gate_output.logits, gate_output.top_k_indices)  # type: ignore[attr-defined]
            terms.update({f"gating/{name}": value for name, value in gating.items()})
        if self.alignment is not None:
            factor = self.alignment_factor()
            metrics["alignment_factor"] = factor
            if factor > 0.0:
                term = self._alignment(batch, cond, p, actions)
                terms["alignment"] = term if factor == 1.0 else factor * term
        if isinstance(p, DiagonalGaussian):
            metrics["prior_std"] = p.std.detach().mean()
        else:
            metrics["prior_entropy"] = -(p.softmax(-1) * p.log_softmax(-1)).sum(-1).detach().mean()
        return LossOutput(terms, metrics)

    def alignment_factor(self) -> float:
        """Share of the Sinkhorn term's weight at the current step: 0 before ``alignment_start_step``, then a
        linear ramp to 1 over ``alignment_warmup_steps``."""
        start, warmup = self.config.alignment_start_step, self.config.alignment_warmup_steps
        step = self.context.step
        if step < start:
            return 0.0
        return 1.0 if warmup == 0 else min(1.0, (step - start + 1) / warmup)

    def alignment_steps(self) -> int:
        """Integration steps of the chunks the Sinkhorn term aligns (``alignment_steps``, else ``flow.num_steps``)."""
        return self.config.alignment_steps or self.config.flow.num_steps

    def _alignment(
        self, batch: Batch, cond: torch.Tensor, prior: LatentDistribution, actions: torch.Tensor
    ) -> torch.Tensor:
        """Sinkhorn between chunks generated from z ~ p(z|o) (:meth:`alignment_steps` differentiable steps)
        and the expert chunks."""
        assert self.alignment is not None
        rows = self.config.alignment_samples
        if rows is not None and rows < actions.shape[0]:
            batch = {key: value[:rows] for key, value in batch.items()}
            cond, actions = cond[:rows], actions[:rows]
            prior = self.prior(cond)
        z = self._reparameterized(prior)
        weights, _ = self._route(cond, z)
        x0 = sample_noise(tuple(actions.shape), actions.device, self.config.flow.noise_std)
        net, steps = self.flow_net(cond, z, weights), self.alignment_steps()
        generated = one_step(self.config.flow, net, x0) if steps == 1 else sample_flow(self.config.flow, net, x0, steps)
        state = batch[self.state_key].flatten(1) if self.state_key is not None else None
        loss: torch.Tensor = self.alignment(generated, actions, state, state)
        return loss

    # -- inference -----------------------------------------------------------------------------------
    def _sample(
        self, observation: Batch, steps: int, generator: torch.Generator | None, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        cond = self.encode_observation(observation)
        z = self.sample_latent(cond, generator)
        shape = (cond.shape[0], self.horizon, self.action_dim)
        x0 = source_noise(shape, cond.device, self.config.flow.noise_std, generator, noise)
        return self.decode(cond, z, steps, generator, x0)
