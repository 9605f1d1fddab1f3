"""The obs_encoder block: keys from DataInfo, history, cameras (shared or not), errors, learning."""

from __future__ import annotations

import pytest
import torch

from vfp.protocols import DataInfo, FeatureInfo
from vfp_il_components.models.observation import ObservationEncoder
from vfp_il_components.models.specs import ObsEncoderConfig

BATCH, HISTORY = 4, 2
SMALL_CONV = {"channels": [4, 8], "strides": [2, 1], "num_keypoints": 4, "out_dim": 6}


def make_info(*, cameras: dict[str, tuple[int, int, int]] | None = None, state: int = 3) -> DataInfo:
    features = {"observation.state": FeatureInfo("observation.state", (state,), "state")}
    for name, shape in (cameras or {}).items():
        features[f"observation.{name}"] = FeatureInfo(f"observation.{name}", shape, "image")
    features["action"] = FeatureInfo("action", (2,), "action")
    return DataInfo(features=features, history=HISTORY, horizon=4)


def config(**settings: object) -> ObsEncoderConfig:
    return ObsEncoderConfig(
        type="obs_encoder", **{"hidden_dims": [32], "out_dim": 16, "image_encoder": SMALL_CONV, **settings}
    )


def batch_for(info: DataInfo, batch: int = BATCH) -> dict[str, torch.Tensor]:
    return {
        key: torch.rand(batch, info.history, *feature.shape)
        for key, feature in info.features.items()
        if feature.role != "action"
    }


def test_state_only_data_gives_one_feature_vector() -> None:
    info = make_info()
    encoder = ObservationEncoder(config(), info=info)
    assert encoder(batch_for(info)).shape == (BATCH, 16)
    assert encoder.out_dim == 16
    assert encoder.image_keys == []


def test_state_history_is_flattened_into_the_fusion_input() -> None:
    encoder = ObservationEncoder(config(), info=make_info(state=5))
    assert encoder.fusion.in_dim == HISTORY * 5


def test_cameras_and_state_are_fused() -> None:
    info = make_info(cameras={"front": (3, 16, 16), "wrist": (3, 16, 16)})
    encoder = ObservationEncoder(config(), info=info)
    assert encoder.image_keys == ["observation.front", "observation.wrist"]
    assert list(encoder.image_encoders) == ["shared"]
    assert encoder.fusion.in_dim == HISTORY * (3 + 2 * 6)
    assert encoder(batch_for(info)).shape == (BATCH, 16)


def test_each_camera_gets_its_own_encoder_when_not_shared() -> None:
    info = make_info(cameras={"front": (3, 16, 16), "wrist": (1, 8, 12)})
    encoder = ObservationEncoder(config(share_image_encoder=False), info=info)
    assert list(encoder.image_encoders) == ["front", "wrist"]
    assert encoder(batch_for(info)).shape == (BATCH, 16)


def test_sharing_cameras_of_different_shapes_is_an_error() -> None:
    info = make_info(cameras={"front": (3, 16, 16), "wrist": (1, 8, 12)})
    with pytest.raises(ValueError, match="share_image_encoder: false"):
        ObservationEncoder(config(), info=info)


def test_output_depends_on_every_history_step_and_camera() -> None:
    torch.manual_seed(0)
    info = make_info(cameras={"front": (3, 16, 16)})
    encoder = ObservationEncoder(config(), info=info).eval()
    batch = batch_for(info)
    reference = encoder(batch)
    for key in ("observation.state", "observation.front"):
        for step in range(HISTORY):
            changed = dict(batch)
            changed[key] = batch[key].clone()
            changed[key][:, step] = torch.rand_like(changed[key][:, step])
            assert not torch.allclose(encoder(changed), reference, atol=1e-5), (key, step)


def test_keys_can_be_selected_with_or_without_the_prefix() -> None:
    info = make_info(cameras={"front": (3, 16, 16)})
    encoder = ObservationEncoder(config(state_keys=["state"], image_keys=[]), info=info)
    assert encoder.state_keys == ["observation.state"]
    assert encoder.image_keys == []
    batch = batch_for(info)
    del batch["observation.front"]
    assert encoder(batch).shape == (BATCH, 16)


def test_unknown_key_is_an_error_listing_the_available_ones() -> None:
    with pytest.raises(ValueError, match=r"'observation.joints'.*available state features: \['observation.state'\]"):
        ObservationEncoder(config(state_keys=["observation.joints"]), info=make_info())


def test_no_feature_to_encode_is_an_error() -> None:
    with pytest.raises(ValueError, match="no observation feature"):
        ObservationEncoder(config(state_keys=[], image_keys=[]), info=make_info())


def test_missing_batch_key_is_an_error() -> None:
    encoder = ObservationEncoder(config(), info=make_info())
    with pytest.raises(KeyError, match=r"observation\.state"):
        encoder({"action": torch.zeros(BATCH, 4, 2)})


def test_wrong_history_length_is_an_error() -> None:
    encoder = ObservationEncoder(config(), info=make_info())
    with pytest.raises(ValueError, match=r"\(B, 2, 3\) \(B, T, \.\.\.\)"):
        encoder({"observation.state": torch.zeros(BATCH, 3, 3)})


def test_learns_a_target_that_needs_state_history_and_image() -> None:
    """Target: last state's first entry minus the previous one, plus 1 when the image is bright."""
    torch.manual_seed(0)
    info = make_info(cameras={"front": (1, 8, 8)})
    encoder = ObservationEncoder(config(out_dim=1, hidden_dims=[64]), info=info)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=3e-3)

    def sample(n: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        batch = batch_for(info, n)
        bright = torch.randint(0, 2, (n,)).float()
        batch["observation.front"] = batch["observation.front"] * 0.2 + 0.8 * bright[:, None, None, None, None]
        state = batch["observation.state"]
        return batch, state[:, 1, 0] - state[:, 0, 0] + bright

    for _ in range(80):
        batch, target = sample(64)
        loss = (encoder(batch)[:, 0] - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    batch, target = sample(256)
    with torch.no_grad():
        error = (encoder(batch)[:, 0] - target).square().mean()
    assert error < 0.1 * target.var()
