"""``Policy``: input checks, output types, seeding, ``act`` with its history, queue and temporal ensembling."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from policy_helpers import state_history, train_tiny

import vfp
from vfp._plugins import get_host, reset_host
from vfp.policy import ObservationError, PolicyLoadError, load_policy


@pytest.fixture(scope="module")
def policy(vfp_run: Path) -> vfp.policy.Policy:
    return load_policy(vfp_run, device="cpu")


def test_vfp_load_policy_is_the_public_entry_point(vfp_run: Path) -> None:
    loaded = vfp.load_policy(vfp_run, device="cpu")
    assert type(loaded).__name__ == "Policy"
    assert loaded.metadata.trainer == "variational_flow_matching_policy"


def test_metadata_describes_the_policy(policy: vfp.policy.Policy, vfp_run: Path) -> None:
    meta = policy.metadata
    assert (meta.history, meta.horizon, meta.action_dim, meta.action_steps) == (2, 16, 2, 8)
    assert meta.features["observation.state"].shape == (4,)
    assert meta.features["observation.state"].role == "state"
    assert meta.normalization == {"observation.state": "mean_std", "action": "min_max"}
    assert meta.fps == 10.0
    assert meta.step == 20
    assert meta.integration_steps == 10
    assert meta.task == "avoid_obstacle"
    assert "vfp-il-components" in meta.distributions
    assert 0.0 <= meta.metrics["success_rate"] <= 1.0  # the evaluation at the checkpoint's step
    assert meta.source.startswith(str(vfp_run))


def test_outputs_follow_the_inputs(policy: vfp.policy.Policy) -> None:
    state = state_history(3)
    as_numpy = policy.predict_chunk({"observation.state": state}, seed=0)
    as_torch = policy.predict_chunk({"observation.state": torch.from_numpy(state)}, seed=0)
    assert isinstance(as_numpy, np.ndarray)
    assert as_numpy.dtype == np.float32
    assert isinstance(as_torch, torch.Tensor)
    assert as_torch.device.type == "cpu"
    assert np.array_equal(as_numpy, as_torch.numpy())
    one = policy.predict_chunk({"observation.state": state[0]}, seed=0)  # (T, D): one observation
    assert one.shape == (16, 2)
    assert np.array_equal(one, policy.predict_chunk({"observation.state": state[:1]}, seed=0)[0])


def test_a_seeded_policy_repeats_its_sequence(vfp_run: Path) -> None:
    observation = {"observation.state": state_history(4)}
    first, second = load_policy(vfp_run, device="cpu", seed=3), load_policy(vfp_run, device="cpu", seed=3)
    a = [first.predict_chunk(observation) for _ in range(2)]
    b = [second.predict_chunk(observation) for _ in range(2)]
    assert np.array_equal(a[0], b[0])
    assert np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])  # the generator advances between calls


@pytest.mark.parametrize(
    ("observation", "message"),
    [
        ({}, "missing observation key(s) observation.state; the policy needs observation.state (4)"),
        ({"observation.state": np.zeros((3, 2, 5), np.float32)}, "observation.state: expected shape (B, T, 4)"),
        ({"observation.state": np.zeros((3, 3, 4), np.float32)}, "expected 2 observation steps (history), got 3"),
        ({"observation.state": np.zeros((3, 2, 4), bool)}, "expected a float or integer array, got dtype torch.bool"),
        ({"observation.state": np.array([["a"]])}, "observation.state: expected a numeric array"),
        ({"observation.state": "not an array"}, "observation.state: expected a numpy array or a torch tensor, got str"),
    ],
)
def test_bad_observations_name_the_key_and_the_expected_shape(
    policy: vfp.policy.Policy, observation: dict[str, object], message: str
) -> None:
    with pytest.raises(ObservationError) as caught:
        policy.predict_chunk(observation)
    assert message in str(caught.value)


def test_bad_noise_names_the_expected_shape(policy: vfp.policy.Policy) -> None:
    with pytest.raises(ObservationError, match=r"noise: expected standard-normal floats of shape .*\(3, 16, 2\)"):
        policy.predict_chunk({"observation.state": state_history(3)}, noise=np.zeros((3, 8, 2), np.float32))


def _history_batch(frames: list[np.ndarray], history: int) -> dict[str, np.ndarray]:
    """What the data loader gives at the episode's current step: the first frame repeated as padding."""
    recent = frames[-history:]
    pad = history - len(recent)
    stacked = np.stack([recent[0]] * pad + recent, axis=1)
    is_pad = np.zeros(stacked.shape[:2], dtype=bool)
    is_pad[:, :pad] = True
    return {"observation.state": stacked, "observation.state_is_pad": is_pad}


def test_act_plays_action_steps_of_each_chunk_with_the_loaders_history(vfp_run: Path) -> None:
    runner = load_policy(vfp_run, device="cpu", seed=7, action_steps=3)
    twin = load_policy(vfp_run, device="cpu", seed=7)  # same generator: the same chunks, queried by hand
    frames = [state_history(2, history=1, seed=s)[:, 0] for s in range(7)]  # 2 environments, 7 steps
    expected: list[np.ndarray] = []
    for t in range(7):
        if t % 3 == 0:  # a new chunk every action_steps steps, from the history at that step
            chunk = twin.predict_chunk(_history_batch(frames[: t + 1], 2))
        expected.append(chunk[:, t % 3])
    got = [runner.act({"observation.state": frame}) for frame in frames]
    assert all(a.shape == (2, 2) for a in got)
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))


def test_act_on_one_environment_and_reset(vfp_run: Path) -> None:
    runner = load_policy(vfp_run, device="cpu", seed=1)
    twin = load_policy(vfp_run, device="cpu", seed=1)
    frame = state_history(1, history=1)[0, 0]
    action = runner.act({"observation.state": torch.from_numpy(frame)})
    assert isinstance(action, torch.Tensor)
    assert action.shape == (2,)
    with pytest.raises(ObservationError, match="runs 1 environment"):
        runner.act({"observation.state": state_history(3, history=1)[:, 0]})
    three = state_history(3, history=1)[:, 0]
    runner.reset()  # a new episode: fresh history, empty queue, any batch size
    runner.act({"observation.state": three})
    runner.reset()
    first_step = _history_batch([frame[None]], 2)
    chunks = [twin.predict_chunk(batch) for batch in (first_step, _history_batch([three], 2), first_step)]
    # the third chunk (queried anew after reset, from a padded history), not the rest of the second
    assert np.array_equal(runner.act({"observation.state": frame}), chunks[2][0, 0])


def test_temporal_ensembling_is_acts_weighted_average(vfp_run: Path) -> None:
    m = 0.5
    runner = load_policy(vfp_run, device="cpu", seed=2, temporal_ensemble=m)
    twin = load_policy(vfp_run, device="cpu", seed=2)
    frames = [state_history(3, history=1, seed=s)[:, 0] for s in range(5)]
    chunks = []
    for t, frame in enumerate(frames):
        chunks.append(twin.predict_chunk(_history_batch(frames[: t + 1], 2)))  # queried at every step
        weights = [math.exp(-m * i) for i in range(len(chunks))]  # oldest chunk first, weight 1
        want = sum(w * c[:, t - s] for w, (s, c) in zip(weights, enumerate(chunks), strict=True)) / sum(weights)
        np.testing.assert_allclose(runner.act({"observation.state": frame}), want, rtol=1e-6, atol=1e-6)


def test_a_missing_plugin_names_the_distribution_and_version(vfp_run: Path) -> None:
    version = load_policy(vfp_run, device="cpu").metadata.distributions["vfp-il-components"]
    reset_host()
    get_host(disabled=["vfp-il-components"])
    try:
        with pytest.raises(PolicyLoadError) as caught:
            load_policy(vfp_run, device="cpu")
    finally:
        reset_host()
    message = str(caught.value)
    assert "trainer 'variational_flow_matching_policy' is not provided by any installed plugin" in message
    assert f"vfp-il-components {version}" in message


def test_the_checkpoint_is_chosen_by_latest_best_or_step(vfp_run: Path) -> None:
    with pytest.raises(PolicyLoadError, match="checkpoint must be latest, best or a step number"):
        load_policy(vfp_run, checkpoint="newest")
    with pytest.raises(PolicyLoadError, match="keeps no best checkpoint"):
        load_policy(vfp_run, checkpoint="best")
    with pytest.raises(PolicyLoadError, match="has no checkpoint at step 7"):
        load_policy(vfp_run, checkpoint=7)
    assert load_policy(vfp_run, checkpoint=20, device="cpu").metadata.step == 20


@pytest.fixture(scope="module")
def image_policy(tmp_path_factory: pytest.TempPathFactory, policy_data: Path) -> vfp.policy.Policy:
    """VFP from 32x32 images and state (variational_flow_matching_policy/exp2, images shrunk)."""
    run = train_tiny(
        "variational_flow_matching_policy/exp2",
        tmp_path_factory.mktemp("images") / "run",
        policy_data,
        "data.generate.image_size=32",
        "evaluation.env.image_size=32",  # the env renders what the policy sees
    )
    return load_policy(run, device="cpu")


def test_images_as_uint8_hwc_or_float_chw(image_policy: vfp.policy.Policy) -> None:
    assert image_policy.metadata.features["observation.image"].shape == (3, 32, 32)
    images = np.random.default_rng(0).integers(0, 256, (3, 2, 32, 32, 3), dtype=np.uint8)
    state = state_history(3)
    from_uint8 = image_policy.predict_chunk({"observation.state": state, "observation.image": images}, seed=1)
    as_float = torch.from_numpy(images).permute(0, 1, 4, 2, 3).float() / 255.0  # (B, T, C, H, W), not contiguous
    from_float = image_policy.predict_chunk({"observation.state": state, "observation.image": as_float}, seed=1)
    assert np.array_equal(from_uint8, from_float.numpy())
    with pytest.raises(ObservationError, match=r"observation.image: expected shape \(B, T, 32, 32, 3\)"):
        image_policy.predict_chunk({"observation.state": state, "observation.image": images.transpose(0, 1, 4, 2, 3)})
    with pytest.raises(ObservationError, match=r"images must be uint8 .* got dtype torch\.int32"):
        image_policy.predict_chunk({"observation.state": state, "observation.image": images.astype(np.int32)})
    frame = {"observation.state": state[:, -1], "observation.image": images[:, -1]}
    assert image_policy.act(frame).shape == (3, 2)


def test_a_checkpoint_without_normalization_modes_loads_through_its_data(vfp_run: Path, tmp_path: Path) -> None:
    """Checkpoints written before the data description recorded its normalization modes use the training data."""
    import shutil

    old = tmp_path / "old-run"
    shutil.copytree(vfp_run, old)
    (checkpoint,) = (old / "checkpoints").glob("step_*.pt")
    payload = torch.load(checkpoint, weights_only=True)
    payload["data_info"] = {k: payload["data_info"][k] for k in ("history", "horizon", "task", "features")}
    torch.save(payload, checkpoint)
    observation = {"observation.state": state_history(4)}
    legacy = load_policy(old, device="cpu").predict_chunk(observation, seed=2)
    assert np.array_equal(legacy, load_policy(vfp_run, device="cpu").predict_chunk(observation, seed=2))
