"""Each trainer config declares the model components and losses its trainer builds (``component_use``).

``vfp config validate`` relies on the declaration to report what ``vfp train`` would report after
building the trainer, so it must equal what the built trainer actually built: checked for every
packaged experiment (a real data module, built as training builds it) and for the optional parts
(VFP's ``alignment``, ``gate`` and ``gating``) on the in-memory problem of the trainer tests.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from flow_policy_helpers import build, naive_experiment, vfp_experiment

from vfp import ComponentUse, TrainerConfig
from vfp._plugins import get_host, reset_host
from vfp.config import ConfigCatalog, ExperimentConfig, load_experiment, validate_data
from vfp.engine.session import build_trainer


def _packaged_experiments() -> list[str]:
    reset_host()
    try:
        return sorted(e.name for e in ConfigCatalog(get_host()).experiments() if e.distribution == "vfp-configs")
    finally:
        reset_host()


PACKAGED = _packaged_experiments()


def _built(trainer: Any) -> ComponentUse:
    context = trainer.context
    return ComponentUse(models=frozenset(context.models), losses=frozenset(context.losses))


def _declared(config: ExperimentConfig) -> ComponentUse | None:
    assert isinstance(config.trainer, TrainerConfig), type(config.trainer)
    return config.trainer.component_use(config)


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated demos shared by the module: one small file per distinct ``data.generate`` setting."""
    return tmp_path_factory.mktemp("demos")


def test_every_packaged_experiment_is_checked() -> None:
    assert len(PACKAGED) >= 11
    assert "quickstart" in PACKAGED


@pytest.mark.parametrize("name", PACKAGED)
def test_packaged_experiment_declares_what_its_trainer_builds(name: str, demos: Path) -> None:
    generate = load_experiment(name, []).config.data.model_dump().get("generate")
    key = hashlib.sha256(json.dumps(generate, sort_keys=True, default=str).encode()).hexdigest()[:12]
    overrides = [f"data.path={demos / f'{key}.hdf5'}", "data.generate.episodes=10"]
    config = load_experiment(name, overrides).config
    torch.manual_seed(0)
    built = build_trainer(config, get_host(), device=torch.device("cpu"), load_init_from=False)
    declared = _declared(config)
    assert declared is not None
    assert declared == _built(built.trainer)
    assert declared.models == frozenset(config.model)  # every packaged model component is used ...
    assert declared.losses == frozenset(config.losses)  # ... and every packaged loss


@pytest.mark.parametrize(
    ("data", "models", "losses"),
    [
        (naive_experiment(), {"obs_encoder", "velocity"}, {"flow"}),
        (
            vfp_experiment(experts=2, alignment=True),
            {"obs_encoder", "posterior", "prior", "gate", "action_decoder"},
            {"flow", "alignment", "gating"},
        ),
        (
            vfp_experiment(experts=2, alignment=False),
            {"obs_encoder", "posterior", "prior", "gate", "action_decoder"},
            {"flow", "gating"},
        ),
        (
            vfp_experiment(experts=1, alignment=True),
            {"obs_encoder", "posterior", "prior", "action_decoder"},
            {"flow", "alignment"},
        ),
        (vfp_experiment(experts=1, alignment=False), {"obs_encoder", "posterior", "prior", "action_decoder"}, {"flow"}),
    ],
    ids=["naive", "vfp", "vfp-no-alignment", "single-expert", "single-expert-no-alignment"],
)
def test_optional_parts_follow_the_experiment(data: dict[str, Any], models: set[str], losses: set[str]) -> None:
    config = validate_data(data, get_host().registry, "<test experiment>")
    declared = _declared(config)
    assert declared == ComponentUse(models=frozenset(models), losses=frozenset(losses))
    assert declared == _built(build(data))


def test_vfp_without_a_gating_loss_uses_none() -> None:
    data = vfp_experiment(experts=2)
    del data["losses"]["gating"]
    config = validate_data(data, get_host().registry, "<test experiment>")
    declared = _declared(config)
    assert declared is not None
    assert "gating" not in declared.losses
    assert declared == _built(build(data))
