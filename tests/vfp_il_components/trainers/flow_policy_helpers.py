"""Helpers for the flow-matching trainer tests: a trainer built on an in-memory bimodal problem.

The problem: a 1-D observation ``s`` uniform in [-1, 1]; the action chunk (2 steps, 1-D) is
``+1`` or ``-1`` at both steps with equal probability (independent of ``s``), so a policy that
averages the modes outputs values near 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vfp import ComponentKind
from vfp._plugins import get_host
from vfp.config import validate_data
from vfp.engine import TrainerContext
from vfp.engine.building import build_loss, build_model_component
from vfp.protocols import Batch, DataInfo, FeatureInfo

STATE = "observation.state"
CPU = torch.device("cpu")
INFO = DataInfo(
    features={STATE: FeatureInfo(STATE, (1,), "state"), "action": FeatureInfo("action", (1,), "action")},
    history=1,
    horizon=2,
)
SMALL_MLP = {"hidden_dims": [64, 64], "time_embed_dim": 32}


def bimodal_batch(size: int, generator: torch.Generator) -> Batch:
    """Observations (B, 1, 1) and action chunks (B, 2, 1) of +1 or -1."""
    state = torch.rand(size, 1, 1, generator=generator) * 2 - 1
    sign = torch.randint(0, 2, (size, 1, 1), generator=generator).float() * 2 - 1
    return {
        STATE: state,
        f"{STATE}_is_pad": torch.zeros(size, 1, dtype=torch.bool),
        "action": sign.expand(size, 2, 1).clone(),
        "action_is_pad": torch.zeros(size, 2, dtype=torch.bool),
    }


def experiment(trainer: dict[str, Any], model: dict[str, Any], losses: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "data": {"type": "hdf5", "path": "unused.hdf5"},
        "model": {name: {"arch": arch} for name, arch in model.items()},
        "losses": losses or {"flow": {"type": "l2"}},
        "optimizers": {"default": {"type": "adamw_cosine", "lr": 3e-3, "weight_decay": 0.0}},
        "trainer": trainer,
    }


def naive_experiment(**trainer: Any) -> dict[str, Any]:
    return experiment(
        {"type": "naive_flow_matching_policy", **trainer},
        {
            "obs_encoder": {"type": "obs_encoder", "out_dim": 16, "hidden_dims": [32]},
            "velocity": {"type": "mlp", **SMALL_MLP},
        },
    )


def vfp_experiment(latent: str = "gaussian_encoder", experts: int = 2, alignment: bool = True) -> dict[str, Any]:
    model: dict[str, Any] = {
        "obs_encoder": {"type": "obs_encoder", "out_dim": 16, "hidden_dims": [32]},
        "posterior": {"type": latent, "hidden_dims": [64]},
        "prior": {"type": latent, "hidden_dims": [64]},
        "action_decoder": {"type": "moe_decoder", "dispatch": "dense", "expert": {"type": "mlp", **SMALL_MLP}},
    }
    losses: dict[str, Any] = {"flow": {"type": "l2"}}
    if alignment:
        losses["alignment"] = {"type": "sinkhorn", "weight": 0.1, "blur": 0.05}
    trainer: dict[str, Any] = {"type": "vfp_single_expert", "latent": {"dim": 2, "kl_weight": 0.01}}
    if experts > 1:
        model["gate"] = {"type": "gate", "hidden_dims": [32], "top_k": experts, "renormalize": True}
        losses["gating"] = {"type": "moe_gating", "balance_weight": 0.01, "top_k": 1}
        trainer = {**trainer, "type": "variational_flow_matching_policy", "experts": experts}
    return experiment(trainer, model, losses)


def build(data: dict[str, Any], info: DataInfo = INFO, stats: dict[str, dict[str, torch.Tensor]] | None = None) -> Any:
    """Build the experiment's trainer on ``info`` through the registry and the engine's builders."""
    registry = get_host().registry
    config = validate_data(data, registry, "<test experiment>")

    context = TrainerContext(
        config=config,
        info=info,
        normalization_stats=stats or {},
        device=CPU,
        build_model_fn=lambda name, dims: build_model_component(name, config.model[name], registry, dims, device=CPU),
        build_loss_fn=lambda name: build_loss(name, config, registry, CPU),
    )
    return registry.load(ComponentKind.TRAINER, config.trainer.type)(config.trainer, context)


def train(trainer: Any, steps: int, seed: int = 0, batch_size: int = 256, lr: float = 3e-3) -> None:
    """Plain Adam on fresh bimodal batches (the engine's loop is tested elsewhere)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    parameters = [p for module in trainer.context.models.values() for p in module.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=lr)
    trainer.context.models.train()
    for step in range(steps):
        trainer.context.step = step
        terms, _ = trainer.compute_losses(bimodal_batch(batch_size, generator))
        loss = sum(terms.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    trainer.context.models.eval()


def observations(size: int, value: float | None = None, seed: int = 1) -> Batch:
    """Observations only; all equal to ``value`` when given."""
    batch = bimodal_batch(size, torch.Generator().manual_seed(seed))
    if value is not None:
        batch[STATE] = torch.full_like(batch[STATE], value)
    return {key: tensor for key, tensor in batch.items() if key.startswith("observation.")}


def save_as_run(trainer: Any, run_dir: Path, step: int = 1) -> Path:
    """Write ``trainer``'s weights, config and data description as a run's checkpoint (what ``vfp train`` saves
    and ``vfp.load_policy`` reads); returns the run directory."""
    from vfp.engine.checkpoint import save_checkpoint
    from vfp.engine.session import data_info_record
    from vfp.engine.state import CheckpointPayload

    context = trainer.context
    payload = CheckpointPayload(
        step=step,
        config=context.config.model_dump(mode="json"),
        models={name: module.state_dict() for name, module in context.models.items()},
        normalization=dict(context.normalization_stats),
        data_info=data_info_record(context.info),
    )
    save_checkpoint(run_dir / "checkpoints", step, payload, keep_last=1)
    return run_dir
