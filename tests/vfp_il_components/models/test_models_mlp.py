"""The mlp block: shapes, FiLM / concat conditioning on cond and time, residual variant, errors, learning."""

from __future__ import annotations

import pytest
import torch

from vfp_il_components.models.mlp import MLP, ChunkMLP, build_mlp
from vfp_il_components.models.specs import MlpConfig

BATCH, HORIZON, ACTION, COND = 6, 4, 2, 5


def config(**settings: object) -> MlpConfig:
    return MlpConfig(type="mlp", **{"hidden_dims": [32, 32], **settings})


def test_vector_mlp_maps_in_dim_to_out_dim() -> None:
    net = build_mlp(config(), in_dim=3, out_dim=7)
    assert isinstance(net, MLP)
    assert net(torch.randn(BATCH, 3)).shape == (BATCH, 7)


def test_vector_mlp_keeps_leading_dimensions() -> None:
    net = build_mlp(config(), in_dim=3, out_dim=2)
    assert net(torch.randn(2, 5, 3)).shape == (2, 5, 2)


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("conditioning", ["film", "concat"])
def test_chunk_mlp_maps_chunks_to_chunks(residual: bool, conditioning: str) -> None:
    net = build_mlp(
        config(residual=residual, conditioning=conditioning),
        action_dim=ACTION,
        horizon=HORIZON,
        cond_dim=COND,
        time_input=True,
    )
    assert isinstance(net, ChunkMLP)
    out = net(torch.randn(BATCH, HORIZON, ACTION), torch.randn(BATCH, COND), torch.rand(BATCH))
    assert out.shape == (BATCH, HORIZON, ACTION)


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("conditioning", ["film", "concat"])
def test_output_depends_on_the_condition(residual: bool, conditioning: str) -> None:
    torch.manual_seed(0)
    net = build_mlp(config(residual=residual, conditioning=conditioning), in_dim=3, out_dim=2, cond_dim=COND)
    x = torch.randn(BATCH, 3)
    assert not torch.allclose(net(x, torch.randn(BATCH, COND)), net(x, torch.randn(BATCH, COND)), atol=1e-4)


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("conditioning", ["film", "concat"])
def test_output_depends_on_the_time(residual: bool, conditioning: str) -> None:
    torch.manual_seed(0)
    net = build_mlp(config(residual=residual, conditioning=conditioning), in_dim=3, out_dim=2, time_input=True)
    x = torch.randn(BATCH, 3)
    assert not torch.allclose(net(x, t=torch.full((BATCH,), 0.1)), net(x, t=torch.full((BATCH,), 0.9)), atol=1e-4)


def test_film_layers_modulate_hidden_features_while_concat_widens_the_input() -> None:
    film = build_mlp(config(conditioning="film"), in_dim=3, out_dim=2, cond_dim=COND)
    concat = build_mlp(config(conditioning="concat"), in_dim=3, out_dim=2, cond_dim=COND)
    assert any(name.endswith("film.proj.weight") for name, _ in film.named_parameters())
    assert not any("film" in name for name, _ in concat.named_parameters())
    assert concat.layers[0].linear.in_features == 3 + COND
    assert film.layers[0].linear.in_features == 3


def test_time_accepts_a_number_or_a_column() -> None:
    net = build_mlp(config(), in_dim=3, out_dim=2, time_input=True)
    x = torch.randn(BATCH, 3)
    column = net(x, t=torch.full((BATCH, 1), 0.3))
    assert torch.allclose(net(x, t=0.3), column, atol=1e-6)


def test_residual_mlp_adds_each_block_to_its_input() -> None:
    torch.manual_seed(0)
    net = build_mlp(config(residual=True, hidden_dims=[16, 16, 16]), in_dim=3, out_dim=2)
    assert len(net.layers) == 3
    block = net.layers[0]
    h = torch.randn(BATCH, 16)
    with torch.no_grad():
        block.linear_out.weight.zero_()
        block.linear_out.bias.zero_()
    assert torch.equal(block(h, None), h)


def test_missing_condition_is_an_error() -> None:
    net = build_mlp(config(), in_dim=3, out_dim=2, cond_dim=COND)
    with pytest.raises(ValueError, match="cond_dim=5; pass cond"):
        net(torch.randn(BATCH, 3))


def test_condition_of_the_wrong_size_is_an_error() -> None:
    net = build_mlp(config(), in_dim=3, out_dim=2, cond_dim=COND)
    with pytest.raises(ValueError, match="cond must have last dimension 5"):
        net(torch.randn(BATCH, 3), torch.randn(BATCH, 4))


def test_time_given_to_a_network_without_time_input_is_an_error() -> None:
    net = build_mlp(config(), in_dim=3, out_dim=2)
    with pytest.raises(ValueError, match="without a time input"):
        net(torch.randn(BATCH, 3), t=torch.rand(BATCH))


def test_chunk_of_the_wrong_shape_is_an_error() -> None:
    net = build_mlp(config(), action_dim=ACTION, horizon=HORIZON)
    with pytest.raises(ValueError, match=r"\(B, 4, 2\)"):
        net(torch.randn(BATCH, HORIZON + 1, ACTION))


def test_builder_needs_vector_or_chunk_dimensions() -> None:
    with pytest.raises(ValueError, match="either in_dim and out_dim"):
        build_mlp(config(), in_dim=3, out_dim=2, action_dim=2, horizon=4)
    with pytest.raises(ValueError, match="either in_dim and out_dim"):
        build_mlp(config())


def test_film_without_hidden_layers_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one hidden layer"):
        build_mlp(config(hidden_dims=[]), in_dim=3, out_dim=2, cond_dim=COND)


def test_dropout_is_active_only_in_training() -> None:
    torch.manual_seed(0)
    net = build_mlp(config(dropout=0.5), in_dim=3, out_dim=2)
    x = torch.randn(BATCH, 3)
    assert not torch.allclose(net(x), net(x))
    net.eval()
    assert torch.equal(net(x), net(x))


@pytest.mark.parametrize("residual", [False, True])
def test_film_mlp_learns_a_time_and_condition_dependent_target(residual: bool) -> None:
    """y = sin(3 t) * c0 + x0 * c1 can only be fit by using x, the condition and the time."""
    torch.manual_seed(0)
    net = build_mlp(config(residual=residual, hidden_dims=[64, 64]), in_dim=2, out_dim=1, cond_dim=2, time_input=True)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)

    def sample(n: int) -> tuple[torch.Tensor, ...]:
        x, c, t = torch.randn(n, 2), torch.randn(n, 2), torch.rand(n)
        return x, c, t, (torch.sin(3 * t) * c[:, 0] + x[:, 0] * c[:, 1])[:, None]

    for _ in range(400):
        x, c, t, y = sample(256)
        loss = (net(x, c, t) - y).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x, c, t, y = sample(1024)
    with torch.no_grad():
        error = (net(x, c, t) - y).square().mean().item()
    assert error < 0.2 * y.var().item()  # predicting the mean scores 1.0
