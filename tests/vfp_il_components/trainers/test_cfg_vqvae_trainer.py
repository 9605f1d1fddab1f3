"""The cfg_vqvae_flow_matching trainer: code-dropout schedule, classifier-free guidance, and a bimodal toy."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from vfp._plugins import get_host
from vfp.config import validate_data
from vfp.engine import TrainerContext
from vfp.engine.building import build_loss, build_model_component
from vfp.protocols import DataInfo, FeatureInfo
from vfp_il_components.trainers.cfg_vqvae import CfgVqvaeFlowMatchingTrainer, code_dropout_probability
from vfp_il_components.trainers.cfg_vqvae_config import CodeDropoutSchedule

HORIZON, ACTION_DIM, STATE_DIM = 4, 1, 2


def toy_config(**trainer: Any) -> dict[str, Any]:
    return {
        "data": {"type": "hdf5", "path": "unused.hdf5"},
        "model": {
            "obs_encoder": {"arch": {"type": "obs_encoder", "out_dim": 16, "hidden_dims": [32]}},
            "action_encoder": {"arch": {"type": "mlp", "hidden_dims": [64]}},
            "codebook": {"arch": {"type": "vq_codebook", "num_codes": 4, "restart_after": 20}},
            "prior": {"arch": {"type": "categorical_head", "hidden_dims": [32]}},
            "decoder": {"arch": {"type": "mlp", "hidden_dims": [128, 128], "time_embed_dim": 16}},
        },
        "losses": {"flow": {"type": "l2"}},
        "optimizers": {"default": {"type": "adamw_cosine", "lr": 1e-3, "warmup_steps": 0}},
        "trainer": {"type": "cfg_vqvae_flow_matching", "code_dim": 4, **trainer},
    }


def toy_trainer(**trainer: Any) -> CfgVqvaeFlowMatchingTrainer:
    """The trainer on a tiny state-only problem, built through the registry as the engine builds it."""
    torch.manual_seed(0)
    registry = get_host().registry
    config = validate_data(toy_config(**trainer), registry, "<test>")
    info = DataInfo(
        features={
            "observation.state": FeatureInfo("observation.state", (STATE_DIM,), "state"),
            "action": FeatureInfo("action", (ACTION_DIM,), "action"),
        },
        history=1,
        horizon=HORIZON,
    )
    device = torch.device("cpu")
    context = TrainerContext(
        config=config,
        info=info,
        normalization_stats={},
        device=device,
        build_model_fn=lambda name, dims: build_model_component(
            name, config.model[name], registry, dims, device=device
        ),
        build_loss_fn=lambda name: build_loss(name, config, registry, device),
    )
    return CfgVqvaeFlowMatchingTrainer(config.trainer, context)  # type: ignore[arg-type]


def bimodal_batch(size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Observations carry no information about the mode: the chunk is +1 or -1 everywhere, half and half."""
    signs = torch.randint(0, 2, (size, 1, 1), generator=generator).float() * 2 - 1
    return {
        "observation.state": torch.randn(size, 1, STATE_DIM, generator=generator) * 0.1,
        "observation.state_is_pad": torch.zeros(size, 1, dtype=torch.bool),
        "action": signs.expand(size, HORIZON, ACTION_DIM) + 0.05 * torch.randn(size, HORIZON, ACTION_DIM),
        "action_is_pad": torch.zeros(size, HORIZON, dtype=torch.bool),
    }


def test_code_dropout_is_start_before_the_ramp_and_end_after() -> None:
    schedule = CodeDropoutSchedule(start=0.1, end=0.3, start_step=100, ramp_steps=200)
    assert code_dropout_probability(schedule, 0) == pytest.approx(0.1)
    assert code_dropout_probability(schedule, 99) == pytest.approx(0.1)
    assert code_dropout_probability(schedule, 300) == pytest.approx(0.3)
    assert code_dropout_probability(schedule, 10_000) == pytest.approx(0.3)


def test_code_dropout_ramps_linearly() -> None:
    schedule = CodeDropoutSchedule(start=0.0, end=0.4, start_step=100, ramp_steps=200)
    assert code_dropout_probability(schedule, 150) == pytest.approx(0.1)
    assert code_dropout_probability(schedule, 200) == pytest.approx(0.2)


def test_code_dropout_cosine_ramp_is_slow_at_the_start() -> None:
    schedule = CodeDropoutSchedule(start=0.0, end=1.0, ramp_steps=100, shape="cosine")
    assert code_dropout_probability(schedule, 50) == pytest.approx(0.5)
    assert code_dropout_probability(schedule, 10) < 0.1


def test_trainer_drops_codes_at_the_scheduled_rate() -> None:
    trainer = toy_trainer(code_dropout={"start": 0.0, "end": 0.5, "start_step": 0, "ramp_steps": 100})
    kept: list[torch.Tensor] = []
    trainer.decoder.register_forward_hook(lambda module, args, out: kept.append(args[1][:, -1].detach()))
    batch = bimodal_batch(4000, torch.Generator().manual_seed(0))
    for step, expected in ((0, 0.0), (50, 0.25), (100, 0.5)):
        trainer.context.step = step
        kept.clear()
        output = trainer.compute_losses(batch)
        assert float(output.metrics["code_dropout"]) == pytest.approx(expected)
        assert 1.0 - float(kept[0].mean()) == pytest.approx(expected, abs=0.03)


def test_guidance_scale_zero_is_the_unconditional_velocity() -> None:
    trainer = toy_trainer()
    x, t = torch.randn(5, HORIZON, ACTION_DIM), torch.rand(5)
    obs, code = torch.randn(5, 16), torch.randn(5, 4)
    with torch.no_grad():
        unconditional = trainer.decoder(x, trainer.decoder_condition(obs, code, torch.zeros(5)), t)
        guided = trainer.guided_velocity(x, t, obs, code, 0.0)
    torch.testing.assert_close(guided, unconditional)


def test_guidance_scale_one_is_the_conditional_velocity() -> None:
    trainer = toy_trainer()
    x, t = torch.randn(5, HORIZON, ACTION_DIM), torch.rand(5)
    obs, code = torch.randn(5, 16), torch.randn(5, 4)
    with torch.no_grad():
        conditional = trainer.decoder(x, trainer.decoder_condition(obs, code, torch.ones(5)), t)
        guided = trainer.guided_velocity(x, t, obs, code, 1.0)
    torch.testing.assert_close(guided, conditional)


def test_guidance_extrapolates_from_the_unconditional_to_the_conditional_velocity() -> None:
    trainer = toy_trainer()
    x, t = torch.randn(5, HORIZON, ACTION_DIM), torch.rand(5)
    obs, code = torch.randn(5, 16), torch.randn(5, 4)
    with torch.no_grad():
        v_c = trainer.decoder(x, trainer.decoder_condition(obs, code, torch.ones(5)), t)
        v_u = trainer.decoder(x, trainer.decoder_condition(obs, code, torch.zeros(5)), t)
        guided = trainer.guided_velocity(x, t, obs, code, 2.5)
    torch.testing.assert_close(guided, v_u + 2.5 * (v_c - v_u), rtol=1e-4, atol=1e-5)


def test_guided_velocity_runs_both_passes_in_one_batched_forward() -> None:
    trainer = toy_trainer()
    rows: list[int] = []
    trainer.decoder.register_forward_hook(lambda module, args, out: rows.append(int(args[0].shape[0])))
    with torch.no_grad():
        trainer.guided_velocity(
            torch.randn(5, HORIZON, ACTION_DIM), torch.rand(5), torch.randn(5, 16), torch.randn(5, 4), 1.5
        )
    assert rows == [10]


def test_sampling_calls_the_decoder_once_per_euler_step() -> None:
    trainer = toy_trainer(guidance_scale=2.0)
    rows: list[int] = []
    trainer.decoder.register_forward_hook(lambda module, args, out: rows.append(int(args[0].shape[0])))
    batch = bimodal_batch(3, torch.Generator().manual_seed(0))
    observation = {k: v for k, v in batch.items() if k.startswith("observation.")}
    actions = trainer.sample_actions(observation, steps=4)
    assert actions.shape == (3, HORIZON, ACTION_DIM)
    assert rows == [6, 6, 6, 6]


def test_learns_both_modes_of_a_bimodal_toy_problem() -> None:
    trainer = toy_trainer(code_dropout={"start": 0.1, "end": 0.1, "ramp_steps": 0}, guidance_scale=1.0)
    modules = trainer.context.models
    optimizer = torch.optim.Adam([p for p in modules.parameters() if p.requires_grad], lr=2e-3)
    generator = torch.Generator().manual_seed(0)
    modules.train()
    for step in range(400):
        trainer.context.step = step
        output = trainer.compute_losses(bimodal_batch(128, generator))
        optimizer.zero_grad()
        sum(output.terms.values()).backward()  # type: ignore[union-attr]
        optimizer.step()
    modules.eval()
    batch = bimodal_batch(400, generator)
    observation = {k: v for k, v in batch.items() if k.startswith("observation.")}
    means = trainer.sample_actions(observation, steps=10).mean(dim=(1, 2))
    positive, negative = float((means > 0.5).float().mean()), float((means < -0.5).float().mean())
    assert positive > 0.25  # both routes, near their true weights of one half
    assert negative > 0.25
    assert positive + negative > 0.85  # few averaged chunks between the modes
