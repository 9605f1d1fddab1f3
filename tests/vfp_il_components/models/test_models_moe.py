"""The gate (top-k, temperature, noise) and the mixture-of-experts decoder (experts see z; sparse = dense)."""

from __future__ import annotations

import pytest
import torch

from vfp_il_components.models.moe import Gate, MoEDecoder, top_k_weights
from vfp_il_components.models.specs import GateConfig, MoEDecoderConfig

BATCH, HORIZON, ACTION, COND, LATENT, EXPERTS = 8, 4, 2, 5, 3, 4
MLP_EXPERT = {"type": "mlp", "hidden_dims": [32, 32]}
TRANSFORMER_EXPERT = {"type": "chunk_transformer", "d_model": 16, "num_layers": 1, "num_heads": 2}


def gate(**settings: object) -> Gate:
    return Gate(GateConfig(type="gate", **settings), cond_dim=COND, num_experts=EXPERTS)


def decoder(expert: dict[str, object] = MLP_EXPERT, dispatch: str = "sparse", **dims: int) -> MoEDecoder:
    config = MoEDecoderConfig(type="moe_decoder", expert=expert, dispatch=dispatch)
    sizes = {"cond_dim": COND, "latent_dim": LATENT, "num_experts": EXPERTS, **dims}
    return MoEDecoder(config, action_dim=ACTION, horizon=HORIZON, **sizes)


def inputs(batch: int = BATCH) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        torch.randn(batch, HORIZON, ACTION),
        torch.randn(batch, COND),
        torch.rand(batch),
        torch.randn(batch, LATENT),
    )


def two_hot_weights(batch: int = BATCH) -> torch.Tensor:
    """Top-2 style weights: row i uses experts i % E and (i + 1) % E."""
    weights = torch.zeros(batch, EXPERTS)
    rows = torch.arange(batch)
    weights[rows, rows % EXPERTS] = 0.7
    weights[rows, (rows + 1) % EXPERTS] = 0.3
    return weights


def test_top_k_weights_zero_the_rest_and_rows_sum_to_one() -> None:
    out = gate(top_k=2)(torch.randn(BATCH, COND))
    assert out.weights.shape == out.logits.shape == (BATCH, EXPERTS)
    assert out.top_k_indices.shape == (BATCH, 2)
    assert torch.equal((out.weights > 0).sum(dim=-1), torch.full((BATCH,), 2))
    assert torch.allclose(out.weights.sum(dim=-1), torch.ones(BATCH))
    kept = out.weights.gather(1, out.top_k_indices)
    assert (kept > 0).all()
    assert torch.allclose(kept, out.logits.gather(1, out.top_k_indices).softmax(dim=-1))


def test_top_k_keeps_the_largest_logits() -> None:
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    weights, indices = top_k_weights(logits, 2)
    assert indices.tolist() == [[1, 3]]
    assert weights[0, 0] == 0
    assert weights[0, 2] == 0


def test_without_renormalization_top_k_keeps_the_full_softmax_probabilities() -> None:
    out = gate(top_k=2, renormalize=False)(torch.randn(BATCH, COND))
    probs = out.logits.softmax(dim=-1)
    assert torch.equal((out.weights > 0).sum(dim=-1), torch.full((BATCH,), 2))
    assert torch.allclose(out.weights.gather(1, out.top_k_indices), probs.gather(1, out.top_k_indices))
    assert (out.weights.sum(dim=-1) < 1).all()


@pytest.mark.parametrize(("renormalize", "learns"), [(True, False), (False, True)])
def test_top_1_router_gets_task_gradients_only_without_renormalization(renormalize: bool, learns: bool) -> None:
    router = gate(top_k=1, renormalize=renormalize)
    (router(torch.randn(BATCH, COND)).weights * torch.randn(BATCH, EXPERTS)).sum().backward()
    gradient = sum(p.grad.abs().sum().item() for p in router.parameters() if p.grad is not None)
    assert (gradient > 0) is learns


def test_without_top_k_every_expert_gets_weight() -> None:
    out = gate()(torch.randn(BATCH, COND))
    assert (out.weights > 0).all()
    assert torch.allclose(out.weights, out.logits.softmax(dim=-1))


def test_lower_temperature_sharpens_the_weights() -> None:
    torch.manual_seed(0)
    router = gate()
    cond = torch.randn(BATCH, COND)
    entropies = []
    for temperature in (4.0, 1.0, 0.25):
        weights = router(cond, temperature=temperature).weights
        entropies.append(-(weights * weights.log()).sum(dim=-1).mean().item())
    assert entropies[0] > entropies[1] > entropies[2]


def test_temperature_divides_the_logits() -> None:
    torch.manual_seed(0)
    router = gate(temperature=0.5)
    cond = torch.randn(BATCH, COND)
    assert torch.allclose(router(cond).logits, 2 * router(cond, temperature=1.0).logits)


def test_noise_is_added_only_in_training() -> None:
    torch.manual_seed(0)
    router = gate(noise_std=1.0)
    cond = torch.randn(BATCH, COND)
    assert not torch.allclose(router(cond).logits, router(cond).logits)
    router.eval()
    assert torch.equal(router(cond).logits, router(cond).logits)


def test_top_k_above_the_number_of_experts_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"top_k \(5\) must be <= num_experts \(4\)"):
        gate(top_k=5)


@pytest.mark.parametrize("expert", [MLP_EXPERT, TRANSFORMER_EXPERT], ids=["mlp", "transformer"])
def test_decoder_maps_chunks_to_chunks(expert: dict[str, object]) -> None:
    x, cond, t, z = inputs()
    assert decoder(expert)(x, cond, t, z=z, weights=two_hot_weights()).shape == (BATCH, HORIZON, ACTION)


@pytest.mark.parametrize("expert", [MLP_EXPERT, TRANSFORMER_EXPERT], ids=["mlp", "transformer"])
def test_experts_see_the_latent_with_the_gate_weights_fixed(expert: dict[str, object]) -> None:
    torch.manual_seed(0)
    net = decoder(expert)
    x, cond, t, z = inputs()
    weights = two_hot_weights()
    assert not torch.allclose(net(x, cond, t, z=z, weights=weights), net(x, cond, t, z=-z, weights=weights), atol=1e-4)
    per_expert = net.expert_outputs(x, cond, t, z=z) - net.expert_outputs(x, cond, t, z=-z)
    assert (per_expert.flatten(2).abs().amax(dim=-1) > 1e-4).all()  # every expert, every row


@pytest.mark.parametrize("expert", [MLP_EXPERT, TRANSFORMER_EXPERT], ids=["mlp", "transformer"])
def test_sparse_dispatch_matches_the_weighted_sum_of_all_experts(expert: dict[str, object]) -> None:
    torch.manual_seed(0)
    net = decoder(expert).eval()
    x, cond, t, z = inputs()
    weights = two_hot_weights()
    expected = torch.einsum("be,beha->bha", weights, net.expert_outputs(x, cond, t, z=z))
    assert torch.allclose(net(x, cond, t, z=z, weights=weights), expected, atol=1e-5)


@pytest.mark.parametrize("routing", ["top_2", "all_experts"])
def test_dense_dispatch_matches_sparse_dispatch(routing: str) -> None:
    torch.manual_seed(0)
    sparse = decoder(dispatch="sparse")
    dense = decoder(dispatch="dense")
    dense.load_state_dict(sparse.state_dict())
    x, cond, t, z = inputs()
    weights = two_hot_weights() if routing == "top_2" else torch.randn(BATCH, EXPERTS).softmax(dim=-1)
    assert torch.allclose(sparse(x, cond, t, z=z, weights=weights), dense(x, cond, t, z=z, weights=weights), atol=1e-5)


def test_sparse_dispatch_gives_every_parameter_a_gradient_even_for_unused_experts() -> None:
    net = decoder()
    x, cond, t, z = inputs()
    weights = torch.zeros(BATCH, EXPERTS)
    weights[:, 0] = 1.0  # experts 1..3 get no rows
    net(x, cond, t, z=z, weights=weights).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() == 0 for p in net.experts[1].parameters())


def test_gradients_reach_the_gate_weights() -> None:
    net = decoder()
    x, cond, t, z = inputs()
    weights = two_hot_weights().requires_grad_(True)
    net(x, cond, t, z=z, weights=weights).square().sum().backward()
    assert weights.grad is not None
    assert (weights.grad[two_hot_weights() > 0] != 0).all()


def test_single_expert_needs_no_weights() -> None:
    net = decoder(num_experts=1)
    x, cond, t, z = inputs()
    assert net(x, cond, t, z=z).shape == (BATCH, HORIZON, ACTION)


def test_several_experts_need_weights() -> None:
    x, cond, t, z = inputs()
    with pytest.raises(ValueError, match="pass the gate weights"):
        decoder()(x, cond, t, z=z)


def test_missing_latent_is_an_error() -> None:
    x, cond, t, _ = inputs()
    with pytest.raises(ValueError, match=r"z must be \(8, 3\), got None"):
        decoder()(x, cond, t, weights=two_hot_weights())


def test_latent_given_to_a_decoder_without_latent_is_an_error() -> None:
    x, cond, t, z = inputs()
    with pytest.raises(ValueError, match="latent_dim=0"):
        decoder(latent_dim=0)(x, cond, t, z=z, weights=two_hot_weights())


def test_decoder_and_gate_learn_a_latent_selected_bimodal_field() -> None:
    """Target velocity: cond plus a ramp whose sign is the mode z (+-1): a decoder ignoring z scores ~0.35."""
    torch.manual_seed(0)
    net = decoder(MLP_EXPERT, cond_dim=ACTION, latent_dim=1, num_experts=2)
    router = Gate(GateConfig(type="gate", hidden_dims=[16]), cond_dim=ACTION + 1, num_experts=2)
    optimizer = torch.optim.Adam([*net.parameters(), *router.parameters()], lr=3e-3)
    ramp = torch.linspace(-1, 1, HORIZON)[None, :, None]

    def sample(n: int) -> tuple[torch.Tensor, ...]:
        cond = torch.randn(n, ACTION)
        mode = torch.where(torch.rand(n, 1) < 0.5, 1.0, -1.0)
        target = cond[:, None, :] + mode[:, :, None] * ramp
        return torch.randn(n, HORIZON, ACTION), cond, torch.rand(n), mode + 0.1 * torch.randn(n, 1), target

    def predict(x: torch.Tensor, cond: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        weights = router(torch.cat([cond, z], dim=-1)).weights
        return net(x, cond, t, z=z, weights=weights)

    for _ in range(150):
        x, cond, t, z, target = sample(128)
        loss = (predict(x, cond, t, z) - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x, cond, t, z, target = sample(512)
    with torch.no_grad():
        error = (predict(x, cond, t, z) - target).square().mean()
    assert error < 0.15 * target.var()
