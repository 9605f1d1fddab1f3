"""The ``mutual_information_estimator`` trainer: how much a policy's latent z tells about the action chunk.

Estimators (lower bounds of mutual information from a learned critic ``f(x, y)``, in nats):

- InfoNCE (van den Oord et al., 2018): ``mean_i [f(x_i, y_i) - log (1/B) sum_j exp f(x_i, y_j)]``;
  in-batch negatives, low variance, never above ``log B``.
- MINE (Belghazi et al., 2018), the Donsker-Varadhan bound ``mean_i f(x_i, y_i) - log mean_{i != j}
  exp f(x_i, y_j)``, trained with MINE's moving-average correction of the gradient's bias; not capped
  by ``log B`` but of higher variance.

The critic is separable, ``f(x_i, y_j) = <g(x_i), h(y_j)>``, so the ``B x B`` score matrix costs one
matrix product. The trainer estimates I(z; A, o) (critic on z and ``[A, o]``) and I(z; o) (critic on z
and o); the chain rule gives the conditional information the policy's decoder can use,
``I(z; A | o) = I(z; A, o) - I(z; o)``. A posterior that collapsed onto p(z | o) gives ~0.

With a synthetic task, a probe also says whether z identifies the ground-truth mode: pairs (initial
observation, expert chunk of a known mode) are encoded, a linear classifier of the mode from z is fit
on half of them, and its held-out accuracy and ``H(mode) - cross-entropy`` (a lower bound of
I(z; mode)) are reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from vfp.engine import EvaluationRequest, LossOutput, TrainerContext
from vfp.protocols import Batch
from vfp_il_components.data.normalization import normalize
from vfp_il_components.evaluation import ObservationCodec, task_of
from vfp_il_components.flow import ACTION_KEY, observation_of
from vfp_il_components.trainers.mutual_information_config import ModeProbeConfig, MutualInformationEstimatorConfig

__all__ = [
    "ActionSamplingUnsupported",
    "MineMovingAverage",
    "MutualInformationTrainer",
    "dv_bound",
    "infonce_bound",
    "mine_surrogate",
    "probe_modes",
    "separable_scores",
]

NATS_TO_BITS = 1.0 / math.log(2.0)


class ActionSamplingUnsupported(NotImplementedError):
    """Raised by :meth:`MutualInformationTrainer.sample_actions`: an MI estimator is not a policy."""


def separable_scores(x_embedding: torch.Tensor, y_embedding: torch.Tensor) -> torch.Tensor:
    """Critic scores ``S[i, j] = <g(x_i), h(y_j)>`` ``(B, B)``; positives on the diagonal."""
    return x_embedding.float() @ y_embedding.float().T


def _off_diagonal_logmeanexp(scores: torch.Tensor) -> torch.Tensor:
    size = scores.shape[0]
    if size < 2:
        raise ValueError("a mutual-information bound needs a batch of at least 2 pairs")
    eye = torch.eye(size, dtype=torch.bool, device=scores.device)
    off = scores.masked_fill(eye, float("-inf"))
    return off.flatten().logsumexp(dim=0) - math.log(size * (size - 1))


def infonce_bound(scores: torch.Tensor) -> torch.Tensor:
    """InfoNCE lower bound (nats) from a ``(B, B)`` score matrix whose diagonal holds the positive pairs."""
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"scores must be a square (B, B) matrix, got {tuple(scores.shape)}")
    return (scores.diagonal() - scores.logsumexp(dim=1)).mean() + math.log(scores.shape[0])


def dv_bound(scores: torch.Tensor) -> torch.Tensor:
    """Donsker-Varadhan (MINE) lower bound (nats): joint mean minus log-mean-exp of the off-diagonal pairs."""
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"scores must be a square (B, B) matrix, got {tuple(scores.shape)}")
    return scores.diagonal().mean() - _off_diagonal_logmeanexp(scores)


class MineMovingAverage(nn.Module):
    """Moving average of MINE's partition term ``mean exp f`` over the product of marginals.

    Kept in the trainer's state (saved with checkpoints) so that a resumed run continues exactly.
    """

    value: torch.Tensor

    def __init__(self, decay: float) -> None:
        super().__init__()
        self.decay = decay
        self.register_buffer("value", torch.tensor(float("nan"), dtype=torch.float64))

    @torch.no_grad()
    def update(self, partition: torch.Tensor) -> torch.Tensor:
        """Fold in this batch's ``mean exp f`` and return the average (a detached scalar)."""
        current = partition.detach().double().cpu()
        if torch.isnan(self.value):
            self.value.copy_(current)
        else:
            self.value.mul_(self.decay).add_(current, alpha=1.0 - self.decay)
        return self.value.clone()


def mine_surrogate(scores: torch.Tensor, average: MineMovingAverage) -> torch.Tensor:
    """A surrogate whose gradient is MINE's bias-corrected gradient of the DV bound (maximize it).

    ``mean f(joint) - mean exp f(marginal) / ma`` has gradient ``E[grad f] - E[exp f grad f] / ma``, with
    ``ma`` the moving average of ``mean exp f(marginal)`` instead of the batch's own (which biases the
    gradient of ``log mean exp f``).
    """
    log_partition = _off_diagonal_logmeanexp(scores)
    moving = average.update(log_partition.exp()).to(scores.device, scores.dtype)
    return scores.diagonal().mean() - log_partition.exp() / moving.clamp_min(1e-12)


def _gaussian_or_logits(output: Any, sample: bool, training: bool) -> torch.Tensor:
    """z from a posterior's output: a DiagonalGaussian (sample or mean) or categorical logits (one-hot or probs)."""
    mean = getattr(output, "mean", None)
    if isinstance(mean, torch.Tensor):
        if sample:
            z: torch.Tensor = output.rsample()
            return z
        return mean
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"the posterior must return a DiagonalGaussian or logits, got {type(output).__name__}")
    if not sample:
        return output.softmax(dim=-1)
    from vfp_il_components.models.latent import gumbel_softmax

    if training:
        return gumbel_softmax(output, tau=1.0, hard=True)
    return F.one_hot(torch.multinomial(output.float().softmax(dim=-1), 1).squeeze(-1), output.shape[-1]).to(
        output.dtype
    )


def probe_modes(
    latents: torch.Tensor,
    modes: torch.Tensor,
    num_modes: int,
    *,
    fit_steps: int = 300,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Fit a linear classifier of ``modes`` from ``latents`` on the first half; score it on the second.

    Returns ``accuracy`` (held out), ``chance_accuracy`` (the most frequent mode of the held-out half),
    ``mode_entropy_nats`` (of the held-out half), ``cross_entropy_nats`` and ``mi_lower_bound_nats`` =
    ``max(0, H(mode) - cross-entropy)`` (Barber-Agakov bound of I(z; mode)) and its value in bits.
    """
    z = latents.detach().float().cpu()
    y = modes.detach().long().cpu()
    half = z.shape[0] // 2
    if half < 2:
        raise ValueError(f"the mode probe needs at least 4 samples, got {z.shape[0]}")
    mean, std = z[:half].mean(0), z[:half].std(0)
    # a coordinate constant in the fitting half (a latent class it never uses) is centred, not scaled:
    # dividing by its ~0 std would turn its held-out values into huge logits and the cross-entropy into noise
    z = (z - mean) / torch.where(std > 1e-6, std, torch.ones_like(std))
    classifier = nn.Linear(z.shape[1], num_modes)
    with torch.no_grad():
        bound = 1.0 / math.sqrt(z.shape[1])
        classifier.weight.copy_(torch.rand(classifier.weight.shape, generator=generator) * 2 * bound - bound)
        classifier.bias.zero_()
    optimizer = torch.optim.Adam(classifier.parameters(), lr=0.05)
    with torch.enable_grad():
        for _ in range(fit_steps):
            optimizer.zero_grad()
            F.cross_entropy(classifier(z[:half]), y[:half]).backward()
            optimizer.step()
    with torch.no_grad():
        logits = classifier(z[half:])
        test = y[half:]
        cross_entropy = float(F.cross_entropy(logits, test))
        frequencies = torch.bincount(test, minlength=num_modes).double() / test.numel()
        entropy = float(-(frequencies * frequencies.clamp_min(1e-12).log()).sum())
        bound_nats = max(0.0, entropy - cross_entropy)
        return {
            "accuracy": float((logits.argmax(-1) == test).float().mean()),
            "chance_accuracy": float(frequencies.max()),
            "mode_entropy_nats": entropy,
            "cross_entropy_nats": cross_entropy,
            "mi_lower_bound_nats": bound_nats,
            "mi_lower_bound_bits": bound_nats * NATS_TO_BITS,
        }


class MutualInformationTrainer:
    """Trainer of ``mutual_information_estimator`` (see the module docstring).

    Loss terms: ``joint`` and ``observation``, the negated bounds (``estimator``) of I(z; A, o) and I(z; o).
    The posterior, when trained here, learns only from the joint bound; the observation critic sees z
    detached. Metrics: each bound in nats, and the conditional estimate ``conditional_nats``.
    """

    def __init__(self, config: MutualInformationEstimatorConfig, context: TrainerContext) -> None:
        self.config = config
        self.context = context
        info = context.info
        self.horizon, self.action_dim = info.horizon, info.action_dim
        self.obs_encoder = context.build_model("obs_encoder", info=info)
        obs_dim = int(cast(int, self.obs_encoder.out_dim))
        chunk = dict(action_dim=self.action_dim, horizon=self.horizon)
        posterior_type = context.config.model["posterior"].arch.type
        size = (
            {"num_classes": config.latent_dim}
            if posterior_type == "categorical_head"
            else {"latent_dim": config.latent_dim}
        )
        self.posterior = context.build_model("posterior", cond_dim=obs_dim, **size, **chunk)
        embed = config.embed_dim
        self.critic_latent = context.build_model("critic_latent", in_dim=config.latent_dim, out_dim=2 * embed)
        self.critic_joint = context.build_model(
            "critic_joint", in_dim=self.horizon * self.action_dim + obs_dim, out_dim=embed
        )
        self.critic_observation = context.build_model("critic_observation", in_dim=obs_dim, out_dim=embed)
        self.mine_joint = MineMovingAverage(config.mine_ema_decay)
        self.mine_observation = MineMovingAverage(config.mine_ema_decay)

    # -- estimates ------------------------------------------------------------------------------------

    def latents(self, batch: Mapping[str, torch.Tensor], obs_feature: torch.Tensor) -> torch.Tensor:
        """z ``(B, latent_dim)`` of the batch's (observation, chunk) pairs from the posterior."""
        output = self.posterior(cond=obs_feature, actions=batch[ACTION_KEY])
        return _gaussian_or_logits(output, self.config.latent_sample == "sample", self.posterior.training)

    def scores(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Score matrices ``(B, B)`` of the joint critic (z vs [A, o]) and the observation critic (z vs o)."""
        obs_feature = self.obs_encoder(batch)
        z = self.latents(batch, obs_feature)
        o = obs_feature.detach()
        embed = self.config.embed_dim
        g = self.critic_latent(z)
        g_detached = self.critic_latent(z.detach())[:, embed:]
        h_joint = self.critic_joint(torch.cat([batch[ACTION_KEY].flatten(1), o], dim=-1))
        h_obs = self.critic_observation(o)
        return separable_scores(g[:, :embed], h_joint), separable_scores(g_detached, h_obs)

    # -- trainer protocol -------------------------------------------------------------------------------

    def compute_losses(self, batch: Batch) -> LossOutput:
        joint, observation = self.scores(batch)
        if self.config.estimator == "infonce":
            joint_objective, obs_objective = infonce_bound(joint), infonce_bound(observation)
            joint_bound, obs_bound = joint_objective.detach(), obs_objective.detach()
        else:
            joint_objective = mine_surrogate(joint, self.mine_joint)
            obs_objective = mine_surrogate(observation, self.mine_observation)
            joint_bound, obs_bound = dv_bound(joint.detach()), dv_bound(observation.detach())
        metrics: dict[str, float | torch.Tensor] = {
            "joint_nats": joint_bound,
            "observation_nats": obs_bound,
            "conditional_nats": joint_bound - obs_bound,
        }
        return LossOutput({"joint": -joint_objective, "observation": -obs_objective}, metrics)

    def sample_actions(self, observation: Batch, steps: int | None = None) -> torch.Tensor:
        """Not available: the estimator has no action decoder (``vfp eval`` reports its MI metrics)."""
        raise ActionSamplingUnsupported(
            "mutual_information_estimator does not sample actions: it measures the information between a "
            "policy's latent and the action chunk. Evaluate the policy's own run for actions."
        )

    samples_actions = False
    """Tells the engine's evaluation that there is no ``action_mse`` to compute."""

    @torch.no_grad()
    def evaluate(self, request: EvaluationRequest) -> dict[str, float]:
        """MI estimates (nats and bits) on the held-out split, and the mode probe when the data has a task.

        Bounds are computed on blocks of the first batch's size B and averaged; ``mi/infonce_ceiling_nats``
        is ``log B``, the largest value InfoNCE can report (an estimate near it is saturated).
        """
        blocks: list[tuple[torch.Tensor, torch.Tensor]] = []
        block_size = 0
        for batch in request.batches():
            size = int(batch[ACTION_KEY].shape[0])
            block_size = block_size or size
            if size == block_size or not blocks:
                blocks.append(self.scores(batch))
        metrics: dict[str, float] = {}
        if blocks and min(block[0].shape[0] for block in blocks) >= 2:
            sums = dict.fromkeys(("joint_infonce", "joint_mine", "observation_infonce", "observation_mine"), 0.0)
            for joint, observation in blocks:
                sums["joint_infonce"] += float(infonce_bound(joint))
                sums["joint_mine"] += float(dv_bound(joint))
                sums["observation_infonce"] += float(infonce_bound(observation))
                sums["observation_mine"] += float(dv_bound(observation))
            values = {key: total / len(blocks) for key, total in sums.items()}
            for estimator in ("infonce", "mine"):
                values[f"conditional_{estimator}"] = values[f"joint_{estimator}"] - values[f"observation_{estimator}"]
            for key, value in values.items():
                metrics[f"mi/{key}_nats"] = value
                metrics[f"mi/{key}_bits"] = value * NATS_TO_BITS
            metrics["mi/infonce_ceiling_nats"] = math.log(blocks[0][0].shape[0])
            metrics["mi/batch_size"] = float(blocks[0][0].shape[0])
        probe = self.config.mode_probe
        if probe.enabled and self.context.info.task is not None:
            metrics.update({f"mode_probe/{k}": v for k, v in self._probe(probe, request.generator).items()})
        return metrics

    def _probe(self, settings: ModeProbeConfig, generator: torch.Generator) -> dict[str, float]:
        """Encode (initial observation, expert chunk of a known mode) pairs from the task and probe the mode."""
        import numpy as np

        from vfp_il_components.tasks.base import IMAGE_KEY, STATE_KEY, ObservationHistory

        info = self.context.info
        task = task_of(self.context)
        make_env = getattr(task, "make_env", None)
        if make_env is None:
            return {}
        rng = np.random.default_rng(settings.seed)
        env = make_env(rng, settings.samples)
        states = env.observe()
        frame: dict[str, Any] = {STATE_KEY: states}
        images = info.keys("image")
        if images:
            frame[IMAGE_KEY] = task.render(states, int(info.features[images[0]].shape[-1]))
        raw = ObservationHistory(info.history, frame).batch()
        known = set(info.features)
        raw = {k: v for k, v in raw.items() if k in known or k.removesuffix("_is_pad") in known}
        codec = ObservationCodec(self.context)
        observation = codec.normalize_observation(raw)
        modes = task.sample_modes(rng, settings.samples)
        chunks = torch.from_numpy(task.expert_chunk(states, modes, info.horizon, rng)).float()
        mode_name = codec.modes.get(ACTION_KEY, "none")
        actions = normalize(self.context.normalization_stats, ACTION_KEY, chunks.to(self.context.device), mode_name)
        batch = {**observation_of(observation), ACTION_KEY: actions}
        z = self.latents(batch, self.obs_encoder(batch))
        return probe_modes(
            z, torch.from_numpy(modes), len(task.mode_names), fit_steps=settings.fit_steps, generator=generator
        )

    # -- state ----------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """MINE's moving averages (tensors only)."""
        return {"mine_joint": self.mine_joint.value.clone(), "mine_observation": self.mine_observation.value.clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.mine_joint.value.copy_(state["mine_joint"])
        self.mine_observation.value.copy_(state["mine_observation"])
