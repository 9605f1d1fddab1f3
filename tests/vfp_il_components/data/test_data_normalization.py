"""Statistics and the normalize/unnormalize helpers trainers import."""

from __future__ import annotations

import pytest
import torch

from vfp_il_components.data.normalization import compute_stats, normalize, unnormalize


@pytest.fixture
def values() -> torch.Tensor:
    return torch.randn(500, 3, generator=torch.Generator().manual_seed(0)) * torch.tensor([1.0, 5.0, 0.1]) + 3.0


@pytest.mark.parametrize("mode", ["mean_std", "min_max", "none"])
def test_unnormalize_inverts_normalize(values: torch.Tensor, mode: str) -> None:
    stats = {"action": compute_stats(values)}
    restored = unnormalize(stats, "action", normalize(stats, "action", values, mode), mode)
    torch.testing.assert_close(restored, values, rtol=1e-5, atol=1e-5)


def test_mean_std_gives_zero_mean_unit_std(values: torch.Tensor) -> None:
    normalized = normalize({"x": compute_stats(values)}, "x", values, "mean_std")
    torch.testing.assert_close(normalized.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(normalized.std(0, unbiased=False), torch.ones(3), atol=1e-4, rtol=0)


def test_min_max_maps_the_data_range_to_minus_one_one(values: torch.Tensor) -> None:
    normalized = normalize({"x": compute_stats(values)}, "x", values, "min_max")
    torch.testing.assert_close(normalized.amin(0), -torch.ones(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(normalized.amax(0), torch.ones(3), atol=1e-5, rtol=0)


def test_normalize_broadcasts_over_batch_and_time(values: torch.Tensor) -> None:
    stats = {"x": compute_stats(values)}
    chunk = values[:32].reshape(4, 8, 3)
    assert torch.equal(
        normalize(stats, "x", chunk, "mean_std"), normalize(stats, "x", values[:32], "mean_std").reshape(4, 8, 3)
    )


def test_constant_feature_does_not_divide_by_zero() -> None:
    values = torch.full((10, 2), 4.0)
    stats = {"x": compute_stats(values)}
    assert torch.isfinite(normalize(stats, "x", values, "mean_std")).all()
    torch.testing.assert_close(unnormalize(stats, "x", normalize(stats, "x", values, "min_max"), "min_max"), values)


def test_unknown_mode_is_an_error(values: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="mean_std, min_max, none"):
        normalize({"x": compute_stats(values)}, "x", values, "zscore")


def test_missing_statistics_name_the_available_keys(values: torch.Tensor) -> None:
    with pytest.raises(KeyError, match=r"observation\.state"):
        unnormalize({"observation.state": compute_stats(values)}, "action", values, "min_max")
