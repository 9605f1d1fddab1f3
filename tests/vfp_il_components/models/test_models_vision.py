"""The conv_encoder block: image shapes, pooling, keypoint positions, errors, learning from scratch."""

from __future__ import annotations

import pytest
import torch

from vfp_il_components.models.specs import ConvEncoderConfig
from vfp_il_components.models.vision import ConvEncoder, SpatialSoftmax


def config(**settings: object) -> ConvEncoderConfig:
    return ConvEncoderConfig(
        type="conv_encoder", **{"channels": [8, 16], "strides": [2, 1], "num_keypoints": 8, "out_dim": 12, **settings}
    )


@pytest.mark.parametrize("image_shape", [(3, 32, 32), (1, 20, 36), (4, 9, 9)])
@pytest.mark.parametrize("pooling", ["spatial_softmax", "avg", "max"])
def test_encodes_the_image_shape_given(image_shape: tuple[int, int, int], pooling: str) -> None:
    encoder = ConvEncoder(config(pooling=pooling), image_shape=image_shape)
    assert encoder(torch.rand(5, *image_shape)).shape == (5, 12)
    assert encoder.out_dim == 12


def test_feature_map_shape_follows_the_strides() -> None:
    encoder = ConvEncoder(config(channels=[8, 16, 16], strides=[2, 2, 1]), image_shape=(3, 32, 24))
    assert encoder.feature_map_shape == (16, 8, 6)
    features = encoder.convs(torch.rand(2, 3, 32, 24))
    assert tuple(features.shape[1:]) == encoder.feature_map_shape


def test_leading_dimensions_are_kept() -> None:
    encoder = ConvEncoder(config(), image_shape=(3, 16, 16))
    assert encoder(torch.rand(2, 3, 3, 16, 16)).shape == (2, 3, 12)


def test_uint8_images_are_scaled_to_unit_range() -> None:
    encoder = ConvEncoder(config(), image_shape=(3, 16, 16)).eval()
    images = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    assert torch.allclose(encoder(images), encoder(images.float() / 255.0))


def test_images_of_another_shape_are_an_error() -> None:
    encoder = ConvEncoder(config(), image_shape=(3, 16, 16))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 16, 16\)"):
        encoder(torch.rand(2, 3, 16, 20))


def test_spatial_softmax_finds_a_peak() -> None:
    pool = SpatialSoftmax(in_channels=1, num_keypoints=1)
    with torch.no_grad():
        pool.keypoints.weight.fill_(1.0)
        pool.keypoints.bias.zero_()
    maps = torch.zeros(1, 1, 5, 9)
    maps[0, 0, 4, 0] = 50.0  # bottom-left corner: x = -1, y = +1
    assert torch.allclose(pool(maps), torch.tensor([[-1.0, 1.0]]), atol=1e-4)


def test_learns_where_a_bright_square_is() -> None:
    """Classify whether a bright 3x3 square lies in the left or the right half (keypoints encode position)."""
    torch.manual_seed(0)
    encoder = ConvEncoder(config(out_dim=1), image_shape=(1, 12, 12))
    optimizer = torch.optim.Adam(encoder.parameters(), lr=3e-3)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        images = 0.1 * torch.rand(n, 1, 12, 12)
        right = torch.randint(0, 2, (n,))
        rows = torch.randint(0, 10, (n,))
        cols = torch.randint(0, 4, (n,)) + 6 * right + 1
        for i in range(n):
            images[i, 0, rows[i] : rows[i] + 3, cols[i] - 1 : cols[i] + 2] = 1.0
        return images, right.float()

    for _ in range(60):
        images, labels = sample(32)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(encoder(images)[:, 0], labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    images, labels = sample(200)
    with torch.no_grad():
        accuracy = ((encoder(images)[:, 0] > 0).float() == labels).float().mean()
    assert accuracy > 0.9
