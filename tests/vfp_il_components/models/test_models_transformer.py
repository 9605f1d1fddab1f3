"""The chunk_transformer block: shapes, conditioning by adaLN or tokens, errors, learning."""

from __future__ import annotations

import pytest
import torch

from vfp_il_components.models.specs import ChunkTransformerConfig
from vfp_il_components.models.transformer import ChunkTransformer

BATCH, HORIZON, ACTION, COND = 4, 6, 3, 5


def build(conditioning: str = "adaln", **dims: object) -> ChunkTransformer:
    config = ChunkTransformerConfig(
        type="chunk_transformer", d_model=32, num_layers=2, num_heads=4, conditioning=conditioning
    )
    settings: dict[str, object] = {"action_dim": ACTION, "horizon": HORIZON, "cond_dim": COND, "time_input": True}
    return ChunkTransformer(config, **{**settings, **dims})  # type: ignore[arg-type]


@pytest.mark.parametrize("conditioning", ["adaln", "tokens"])
def test_maps_chunks_to_chunks(conditioning: str) -> None:
    net = build(conditioning)
    out = net(torch.randn(BATCH, HORIZON, ACTION), torch.randn(BATCH, COND), torch.rand(BATCH))
    assert out.shape == (BATCH, HORIZON, ACTION)


@pytest.mark.parametrize("conditioning", ["adaln", "tokens"])
def test_output_depends_on_the_condition(conditioning: str) -> None:
    torch.manual_seed(0)
    net = build(conditioning)
    x, t = torch.randn(BATCH, HORIZON, ACTION), torch.rand(BATCH)
    assert not torch.allclose(net(x, torch.randn(BATCH, COND), t), net(x, torch.randn(BATCH, COND), t), atol=1e-4)


@pytest.mark.parametrize("conditioning", ["adaln", "tokens"])
def test_output_depends_on_the_time(conditioning: str) -> None:
    torch.manual_seed(0)
    net = build(conditioning)
    x, c = torch.randn(BATCH, HORIZON, ACTION), torch.randn(BATCH, COND)
    assert not torch.allclose(net(x, c, torch.full((BATCH,), 0.1)), net(x, c, torch.full((BATCH,), 0.9)), atol=1e-4)


def test_tokens_conditioning_adds_one_token_per_input() -> None:
    assert build("tokens").positions.shape[1] == HORIZON + 2
    assert build("tokens", cond_dim=0).positions.shape[1] == HORIZON + 1
    assert build("adaln").positions.shape[1] == HORIZON


def test_rows_are_independent() -> None:
    torch.manual_seed(0)
    net = build().eval()
    x, c, t = torch.randn(BATCH, HORIZON, ACTION), torch.randn(BATCH, COND), torch.rand(BATCH)
    full = net(x, c, t)
    assert torch.allclose(net(x[:1], c[:1], t[:1]), full[:1], atol=1e-5)


def test_unconditioned_transformer_runs_without_cond_and_time() -> None:
    net = build(cond_dim=0, time_input=False)
    assert net(torch.randn(BATCH, HORIZON, ACTION)).shape == (BATCH, HORIZON, ACTION)


def test_chunk_of_the_wrong_shape_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"\(B, 6, 3\)"):
        build()(torch.randn(BATCH, HORIZON, ACTION + 1), torch.randn(BATCH, COND), torch.rand(BATCH))


def test_missing_time_is_an_error() -> None:
    with pytest.raises(ValueError, match="pass t"):
        build()(torch.randn(BATCH, HORIZON, ACTION), torch.randn(BATCH, COND))


def test_learns_a_condition_dependent_chunk() -> None:
    """Target chunk: a ramp over the horizon (position-dependent) shifted by the condition."""
    torch.manual_seed(0)
    net = build(cond_dim=ACTION, time_input=False)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    ramp = torch.linspace(-1, 1, HORIZON)[None, :, None]
    for _ in range(60):
        c = torch.randn(64, ACTION)
        loss = (net(torch.zeros(64, HORIZON, ACTION), c) - (ramp + c[:, None, :])).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    c = torch.randn(256, ACTION)
    target = ramp + c[:, None, :]
    with torch.no_grad():
        error = (net(torch.zeros(256, HORIZON, ACTION), c) - target).square().mean()
    assert error < 0.1 * target.var()
