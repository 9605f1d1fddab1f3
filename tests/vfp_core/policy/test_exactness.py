"""``predict_chunk`` with the same noise and seed is exactly the trainer's ``sample_actions``, unnormalized.

For every packaged trainer that samples actions, the reference is the evaluation path: the trainer
rebuilt by ``vfp.engine.session.build_trainer_for_evaluation`` from the checkpoint (with the training
data), its observations normalized and its actions unnormalized by vfp-il-components' own codec.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from policy_helpers import state_history, train_tiny

from vfp._plugins import get_host
from vfp.config import validate_data
from vfp.engine import load_checkpoint, policy_weights
from vfp.engine.checkpoint import find_checkpoint
from vfp.engine.session import build_trainer_for_evaluation
from vfp.policy import load_policy
from vfp_il_components.evaluation import ObservationCodec

TRAINERS = [
    "naive_flow_matching_policy/exp1",
    "variational_flow_matching_policy/exp1",
    "vfp_single_expert/exp1",
    "cfg_vqvae_flow_matching/exp1",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, policy_data: Path, vfp_run: Path) -> dict[str, Path]:
    trained = {"variational_flow_matching_policy/exp1": vfp_run}
    for name in TRAINERS:
        if name not in trained:
            trained[name] = train_tiny(name, tmp_path_factory.mktemp(name.split("/")[0]) / "run", policy_data)
    return trained


def _reference(run: Path, observation: dict[str, torch.Tensor], **sample: object) -> torch.Tensor:
    path = find_checkpoint(run)
    payload = load_checkpoint(path)
    host = get_host()
    config = validate_data(payload["config"], host.registry, str(path)).model_copy(update={"device": "cpu"})
    built = build_trainer_for_evaluation(config, payload, host, config_file=str(path))
    for name, state in policy_weights(payload).items():
        built.models[name].load_state_dict(state)
    built.models.eval()
    codec = ObservationCodec(built.context)
    normalized = built.trainer.sample_actions(codec.normalize_observation(observation), **sample)
    return codec.unnormalize_actions(normalized)


@pytest.mark.parametrize("name", TRAINERS)
@pytest.mark.parametrize("steps", [1, 4])
def test_predict_chunk_is_the_trainers_sample_unnormalized(runs: dict[str, Path], name: str, steps: int) -> None:
    policy = load_policy(runs[name], device="cpu")
    state = torch.from_numpy(state_history(6, policy.history))
    noise = torch.randn(6, policy.horizon, policy.action_dim, generator=torch.Generator().manual_seed(1))
    observation = {"observation.state": state}

    got = policy.predict_chunk(observation, steps=steps, noise=noise, seed=5)
    want = _reference(runs[name], observation, steps=steps, noise=noise, generator=torch.Generator().manual_seed(5))
    assert isinstance(got, torch.Tensor)
    assert got.shape == (6, policy.horizon, policy.action_dim)
    assert torch.equal(got, want)

    # without noise, the seeded generator draws it too (after any latent or code)
    got = policy.predict_chunk(observation, steps=steps, seed=11)
    want = _reference(runs[name], observation, steps=steps, generator=torch.Generator().manual_seed(11))
    assert torch.equal(got, want)


def test_vfp_latent_follows_the_seed(runs: dict[str, Path]) -> None:
    """Same noise, other seed: VFP's latent z is drawn again, so the chunks change; same seed: identical."""
    policy = load_policy(runs["variational_flow_matching_policy/exp1"], device="cpu")
    observation = {"observation.state": state_history(16, policy.history)}
    noise = np.zeros((16, policy.horizon, policy.action_dim), dtype=np.float32)
    first = policy.predict_chunk(observation, noise=noise, seed=1)
    assert np.array_equal(first, policy.predict_chunk(observation, noise=noise, seed=1))
    assert not np.array_equal(first, policy.predict_chunk(observation, noise=noise, seed=2))


def test_the_naive_policy_depends_on_the_noise_only(runs: dict[str, Path]) -> None:
    """Naive flow matching draws nothing but the noise: given it, the seed changes nothing."""
    policy = load_policy(runs["naive_flow_matching_policy/exp1"], device="cpu")
    observation = {"observation.state": state_history(4, policy.history)}
    noise = np.random.default_rng(0).standard_normal((4, policy.horizon, policy.action_dim)).astype(np.float32)
    assert np.array_equal(
        policy.predict_chunk(observation, noise=noise, seed=1), policy.predict_chunk(observation, noise=noise, seed=2)
    )
