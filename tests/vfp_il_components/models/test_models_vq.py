"""The vq_codebook block: nearest codes, straight-through and NSVQ gradients, losses, EMA, restarts, metrics."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vfp_il_components.models.specs import VQCodebookConfig
from vfp_il_components.models.vq import VQCodebook, perplexity

DIM, CODES = 3, 8


def codebook(**settings: object) -> VQCodebook:
    config = VQCodebookConfig(type="vq_codebook", **{"num_codes": CODES, "data_init": False, **settings})
    return VQCodebook(config, latent_dim=DIM)


def set_codes(vq: VQCodebook, codes: torch.Tensor) -> None:
    with torch.no_grad():
        vq.codebook.copy_(codes)
        if vq.update == "ema":
            vq.ema_sum.copy_(codes)
            vq.ema_count.fill_(1.0)


def test_output_shapes_follow_the_input() -> None:
    out = codebook()(torch.randn(4, 5, DIM))
    assert out.quantized.shape == (4, 5, DIM)
    assert out.indices.shape == (4, 5)
    assert out.indices.dtype == torch.long


def test_each_vector_maps_to_its_nearest_code() -> None:
    torch.manual_seed(0)
    vq = codebook().eval()
    set_codes(vq, torch.randn(CODES, DIM))
    z = torch.randn(64, DIM)
    out = vq(z)
    assert torch.equal(out.indices, torch.cdist(z, vq.codebook).argmin(dim=-1))
    assert torch.allclose(out.quantized, vq.codebook[out.indices], atol=1e-6)
    assert torch.equal(vq.lookup(out.indices), vq.codebook[out.indices])


@pytest.mark.parametrize("update", ["ema", "loss"])
def test_straight_through_passes_the_decoder_gradient_to_the_encoder(update: str) -> None:
    vq = codebook(codebook_update=update)
    z = torch.randn(16, DIM, requires_grad=True)
    upstream = torch.randn(16, DIM)
    (vq(z).quantized * upstream).sum().backward()
    assert z.grad is not None
    assert torch.allclose(z.grad, upstream)


def test_nsvq_replaces_the_error_by_noise_of_the_same_norm_in_training() -> None:
    torch.manual_seed(0)
    vq = codebook(quantizer="nsvq", codebook_update="loss", restart_after=None)
    set_codes(vq, torch.randn(CODES, DIM))
    z = torch.randn(32, DIM)
    out = vq(z)
    codes = vq.codebook.detach()[out.indices]
    assert torch.allclose((out.quantized - z).norm(dim=-1), (codes - z).norm(dim=-1), atol=1e-5)
    assert not torch.allclose(out.quantized, codes, atol=1e-3)


def test_nsvq_gives_gradients_to_encoder_and_codes() -> None:
    vq = codebook(quantizer="nsvq", codebook_update="loss")
    z = torch.randn(32, DIM, requires_grad=True)
    vq(z).quantized.square().sum().backward()
    assert z.grad is not None
    assert z.grad.abs().sum() > 0
    assert vq.codebook.grad is not None
    assert vq.codebook.grad.abs().sum() > 0


def test_nsvq_returns_the_codes_in_eval_mode() -> None:
    vq = codebook(quantizer="nsvq").eval()
    out = vq(torch.randn(32, DIM))
    assert torch.allclose(out.quantized, vq.codebook[out.indices], atol=1e-6)


def test_commitment_loss_is_beta_times_the_squared_distance_to_the_codes() -> None:
    torch.manual_seed(0)
    vq = codebook(beta=0.5).eval()
    z = torch.randn(32, DIM)
    out = vq(z)
    expected = 0.5 * (z - vq.codebook[out.indices]).square().mean()
    assert out.losses["commitment"].item() >= 0
    assert out.losses["commitment"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_commitment_loss_is_zero_on_the_codes() -> None:
    vq = codebook().eval()
    assert vq(vq.codebook.detach().clone()).losses["commitment"].item() == pytest.approx(0.0, abs=1e-10)


def test_codebook_loss_trains_the_codes_and_ema_mode_has_no_codebook_parameter() -> None:
    loss_mode = codebook(codebook_update="loss")
    out = loss_mode(torch.randn(32, DIM))
    out.losses["codebook"].backward()
    assert isinstance(loss_mode.codebook, torch.nn.Parameter)
    assert loss_mode.codebook.grad is not None
    assert loss_mode.codebook.grad.abs().sum() > 0
    ema_mode = codebook(codebook_update="ema")
    assert "codebook" not in ema_mode(torch.randn(32, DIM)).losses
    assert list(ema_mode.parameters()) == []


def test_ema_moves_each_code_to_the_mean_of_its_vectors() -> None:
    torch.manual_seed(0)
    vq = codebook(ema_decay=0.5, restart_after=None)
    centers = 5 * torch.eye(DIM)[:2]
    set_codes(vq, torch.cat([centers + 0.5, 100 + torch.randn(CODES - 2, DIM)]))
    z = torch.cat([centers[0] + 0.1 * torch.randn(50, DIM), centers[1] + 0.1 * torch.randn(50, DIM)])
    for _ in range(20):
        vq(z)
    assert torch.allclose(vq.codebook[0], z[:50].mean(dim=0), atol=1e-3)
    assert torch.allclose(vq.codebook[1], z[50:].mean(dim=0), atol=1e-3)


@pytest.mark.parametrize("update", ["ema", "loss"])
def test_codes_unused_for_restart_after_calls_are_restarted_from_the_batch(update: str) -> None:
    torch.manual_seed(0)
    vq = codebook(codebook_update=update, restart_after=3)
    codes = torch.randn(CODES, DIM)
    codes[-1] = 1000.0  # far from every input: never chosen
    set_codes(vq, codes)
    z = torch.randn(64, DIM)
    restarted = [vq(z).metrics["restarted"].item() for _ in range(3)]
    assert restarted[:2] == [0.0, 0.0]
    assert restarted[2] >= 1.0
    assert vq.codebook[-1].abs().max() < 100
    assert (vq.codebook[-1].detach() - z).norm(dim=-1).min() < 1e-6  # one of the batch's vectors
    assert vq.unused_calls[-1] == 0


def test_no_restart_in_eval_mode() -> None:
    vq = codebook(restart_after=1).eval()
    codes = torch.randn(CODES, DIM)
    codes[-1] = 1000.0
    set_codes(vq, codes)
    for _ in range(3):
        vq(torch.randn(16, DIM))
    assert torch.equal(vq.codebook[-1], torch.full((DIM,), 1000.0))


def test_data_init_sets_the_codes_from_the_first_training_batch() -> None:
    vq = codebook(data_init=True, restart_after=None, codebook_update="loss")
    z = torch.randn(64, DIM)
    vq(z)
    assert bool(vq.initialized)
    distances = (vq.codebook.detach()[:, None, :] - z[None, :, :]).norm(dim=-1)
    assert (distances.min(dim=-1).values < 1e-6).all()
    assert len({tuple(code.tolist()) for code in vq.codebook}) == CODES


def test_perplexity_of_uniform_usage_is_the_number_of_codes() -> None:
    vq = codebook().eval()
    out = vq(vq.codebook.detach().repeat(4, 1))  # every code used 4 times
    assert out.metrics["perplexity"].item() == pytest.approx(CODES, rel=1e-4)
    assert out.metrics["usage"].item() == pytest.approx(1.0)


def test_perplexity_of_a_single_code_is_one() -> None:
    assert perplexity(torch.tensor([0.0, 12.0, 0.0])).item() == pytest.approx(1.0)
    assert perplexity(torch.tensor([1.0, 1.0, 2.0])).item() == pytest.approx(math.exp(1.5 * math.log(2)), rel=1e-5)


def test_wrong_vector_size_is_an_error() -> None:
    with pytest.raises(ValueError, match="z_e must have last dimension 3"):
        codebook()(torch.randn(4, DIM + 1))


@pytest.mark.parametrize("quantizer", ["straight_through", "nsvq"])
def test_vq_autoencoder_learns_to_reconstruct_clustered_data(quantizer: str) -> None:
    """Data from 6 clusters: encoder -> codebook -> decoder reconstructs it; most codes in use."""
    torch.manual_seed(0)
    centers = 3 * torch.randn(6, 4)
    encoder, decoder = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
    config = VQCodebookConfig(type="vq_codebook", num_codes=CODES, quantizer=quantizer, restart_after=20)
    vq = VQCodebook(config, latent_dim=4)
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-2)

    def sample(n: int) -> torch.Tensor:
        return centers[torch.randint(0, 6, (n,))] + 0.05 * torch.randn(n, 4)

    for _ in range(300):
        x = sample(128)
        out = vq(encoder(x))
        loss = (decoder(out.quantized) - x).square().mean() + sum(out.losses.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    vq.eval()
    x = sample(512)
    with torch.no_grad():
        out = vq(encoder(x))
        error = (decoder(out.quantized) - x).square().mean()
    assert error < 0.05 * x.var()
    assert out.metrics["perplexity"] > 4


def _sync_worker(rank: int, init_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        torch.manual_seed(rank)  # each process sees different vectors and draws different candidates
        vq = VQCodebook(
            VQCodebookConfig(type="vq_codebook", num_codes=CODES, restart_after=2, data_init=True), latent_dim=DIM
        )
        for _ in range(6):
            vq(torch.randn(5, DIM) + 10 * rank)
        gathered = [torch.zeros_like(vq.codebook) for _ in range(2)]
        dist.all_gather(gathered, vq.codebook)
        assert torch.equal(gathered[0], gathered[1]), "codebooks diverged between processes"
    finally:
        dist.destroy_process_group()


def test_codebooks_stay_identical_across_processes(tmp_path: Path) -> None:
    mp.start_processes(_sync_worker, args=(str(tmp_path / "init"),), nprocs=2, join=True, start_method="fork")
