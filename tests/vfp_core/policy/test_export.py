"""``vfp export``: a self-contained folder (safetensors, JSON, YAML; no pickle) that loads to the same policy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from policy_helpers import state_history, vfp_cli
from safetensors.numpy import load_file

from vfp._plugins import get_host, reset_host
from vfp.policy import PolicyLoadError, export_policy, load_policy

FILES = {"model.safetensors", "normalization.safetensors", "config.yaml", "policy.json", "README.md"}


@pytest.fixture(scope="module")
def exported(vfp_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_policy(vfp_run, tmp_path_factory.mktemp("export") / "policy")


def test_the_folder_holds_safetensors_json_yaml_and_a_model_card(exported: Path, vfp_run: Path) -> None:
    assert {p.name for p in exported.iterdir()} == FILES
    for path in exported.iterdir():
        assert not path.read_bytes().startswith(b"\x80"), f"{path.name} looks like a pickle"
    weights = load_file(str(exported / "model.safetensors"))
    assert {key.split("/")[0] for key in weights} == {"obs_encoder", "posterior", "prior", "gate", "action_decoder"}
    assert set(load_file(str(exported / "normalization.safetensors"))) >= {
        "action/min",
        "action/max",
        "observation.state/mean",
    }
    record = json.loads((exported / "policy.json").read_text())
    assert record["format"] == "vfp-policy/1"
    assert (record["history"], record["horizon"], record["action_steps"], record["fps"]) == (2, 16, 8, 10.0)
    assert record["features"]["observation.state"] == {"shape": [4], "role": "state"}
    assert record["components"]["trainer/variational_flow_matching_policy"] == "vfp-il-components"
    assert "vfp-il-components" in record["distributions"]
    assert record["contract_version"]
    assert "success_rate" in record["metrics"]
    assert "git" in record
    config = yaml.safe_load((exported / "config.yaml").read_text())
    assert config["trainer"]["type"] == "variational_flow_matching_policy"
    card = (exported / "README.md").read_text()
    assert "variational_flow_matching_policy" in card
    assert "success_rate" in card
    assert "avoid_obstacle" in card


def test_export_then_load_gives_the_runs_policy_bit_for_bit(exported: Path, vfp_run: Path) -> None:
    run_policy, exported_policy = load_policy(vfp_run, device="cpu"), load_policy(exported, device="cpu")
    observation = {"observation.state": state_history(8)}
    noise = np.random.default_rng(3).standard_normal((8, 16, 2)).astype(np.float32)
    for steps in (1, 10):
        a = run_policy.predict_chunk(observation, steps=steps, noise=noise, seed=9)
        b = exported_policy.predict_chunk(observation, steps=steps, noise=noise, seed=9)
        assert np.array_equal(a, b)
    assert exported_policy.metadata.step == run_policy.metadata.step
    assert exported_policy.metadata.metrics == run_policy.metadata.metrics


def test_an_export_loads_without_the_training_data(exported: Path) -> None:
    data = Path(yaml.safe_load((exported / "config.yaml").read_text())["data"]["path"])
    hidden = data.with_name(data.name + ".hidden")
    data.rename(hidden)
    try:
        policy = load_policy(exported, device="cpu")
        assert policy.predict_chunk({"observation.state": state_history(1)}).shape == (1, 16, 2)
    finally:
        hidden.rename(data)


def test_a_missing_plugin_says_what_to_install(exported: Path) -> None:
    version = json.loads((exported / "policy.json").read_text())["distributions"]["vfp-il-components"]
    reset_host()
    get_host(disabled=["vfp-il-components"])
    try:
        with pytest.raises(PolicyLoadError) as caught:
            load_policy(exported, device="cpu")
    finally:
        reset_host()
    assert f"pip install 'vfp-il-components=={version}'" in str(caught.value)
    assert "trainer 'variational_flow_matching_policy' is provided by vfp-il-components" in str(caught.value)


def test_vfp_export_command(vfp_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "exported"
    done = vfp_cli("export", str(vfp_run), str(out), "--checkpoint", "20")
    assert done.returncode == 0, done.stderr
    assert {p.name for p in out.iterdir()} == FILES
    assert f"exported {vfp_run}" in done.stderr


def test_export_refuses_a_non_empty_folder_and_an_unknown_checkpoint(vfp_run: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(PolicyLoadError, match="exists and is not an empty folder"):
        export_policy(vfp_run, tmp_path / "taken")
    with pytest.raises(PolicyLoadError, match="keeps no best checkpoint"):
        export_policy(vfp_run, tmp_path / "best", checkpoint="best")
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "best").exists()
