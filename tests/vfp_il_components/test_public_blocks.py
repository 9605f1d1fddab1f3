"""The public building blocks of vfp-il-components, and the 1.0 import paths that still reach them.

A third-party trainer imports ``vfp_il_components.settings`` (light), ``vfp_il_components.flow`` and
``vfp_il_components.evaluation``; the 1.0 paths (``trainers.common``, ``trainers.specs``,
``trainers.specs_vq_mi``) keep working with a DeprecationWarning that names the new import.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from vfp import ComponentKind
from vfp._plugins import PluginHost

PUBLIC = ("vfp_il_components.settings", "vfp_il_components.flow", "vfp_il_components.evaluation")
TRAINER_CONFIGS = (
    "vfp_il_components.trainers.flow_matching_config",
    "vfp_il_components.trainers.vfp_config",
    "vfp_il_components.trainers.cfg_vqvae_config",
    "vfp_il_components.trainers.mutual_information_config",
)

MOVED = [
    ("trainers.common", "sample_noise", "vfp_il_components.flow"),
    ("trainers.common", "sample_times", "vfp_il_components.flow"),
    ("trainers.common", "straight_path", "vfp_il_components.flow"),
    ("trainers.common", "integrate", "vfp_il_components.flow"),
    ("trainers.common", "masked_mse", "vfp_il_components.flow"),
    ("trainers.common", "observation_of", "vfp_il_components.flow"),
    ("trainers.common", "ACTION_KEY", "vfp_il_components.flow"),
    ("trainers.common", "evaluate_policy", "vfp_il_components.evaluation"),
    ("trainers.common", "ObservationCodec", "vfp_il_components.evaluation"),
    ("trainers.common", "task_of", "vfp_il_components.evaluation"),
    ("trainers.common", "task_policy", "vfp_il_components.evaluation"),
    ("trainers.common", "ClosedLoopSettings", "vfp_il_components.settings"),
    ("trainers.specs", "ClosedLoopSettings", "vfp_il_components.settings"),
    ("trainers.specs", "FlowSettings", "vfp_il_components.settings"),
    ("trainers.specs", "NaiveFlowMatchingConfig", "vfp_il_components.trainers.flow_matching_config"),
    ("trainers.specs", "VFPConfig", "vfp_il_components.trainers.vfp_config"),
    ("trainers.specs", "VFPSingleExpertConfig", "vfp_il_components.trainers.vfp_config"),
    ("trainers.specs", "LatentSettings", "vfp_il_components.trainers.vfp_config"),
    ("trainers.specs_vq_mi", "CfgVqvaeFlowMatchingConfig", "vfp_il_components.trainers.cfg_vqvae_config"),
    ("trainers.specs_vq_mi", "CodeDropoutSchedule", "vfp_il_components.trainers.cfg_vqvae_config"),
    (
        "trainers.specs_vq_mi",
        "MutualInformationEstimatorConfig",
        "vfp_il_components.trainers.mutual_information_config",
    ),
    ("trainers.specs_vq_mi", "ModeProbeConfig", "vfp_il_components.trainers.mutual_information_config"),
    ("trainers.specs_vq_mi", "ClosedLoopSettings", "vfp_il_components.settings"),
]


@pytest.mark.parametrize(("old", "name", "new"), MOVED, ids=[f"{old}.{name}" for old, name, _ in MOVED])
def test_a_1_0_import_path_warns_and_names_the_replacement(old: str, name: str, new: str) -> None:
    module = importlib.import_module(f"vfp_il_components.{old}")
    with pytest.warns(DeprecationWarning, match=rf"use `from {new} import {name}`") as caught:
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(new), name)
    assert caught[0].filename == __file__  # attributed to the importing code, not to the shim


def test_the_1_0_rollout_options_keeps_returning_keywords() -> None:
    from vfp_il_components.trainers import common

    with pytest.warns(
        DeprecationWarning, match=r"vfp_il_components\.evaluation import rollout_options.*RolloutOptions"
    ):
        old = common.rollout_options
    from vfp_il_components.evaluation import rollout_options

    assert old is not rollout_options  # 1.0 returned the keywords of Task.evaluate; the new one a RolloutOptions


def test_an_unknown_name_of_an_old_path_is_an_attribute_error() -> None:
    from vfp_il_components.trainers import specs

    with pytest.raises(AttributeError, match="no attribute 'NoSuchConfig'"):
        specs.NoSuchConfig  # noqa: B018


def test_our_code_imports_no_deprecated_path() -> None:
    code = (
        "import warnings\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        "from vfp._plugins import PluginHost\n"
        "from vfp import ComponentKind\n"
        "registry = PluginHost().registry\n"
        "for name in registry.names(ComponentKind.TRAINER):\n"
        "    registry.load(ComponentKind.TRAINER, name)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("module", PUBLIC)
def test_public_modules_declare_and_document_their_names(module: str) -> None:
    imported = importlib.import_module(module)
    assert imported.__doc__
    for name in imported.__all__:
        value = getattr(imported, name)
        if callable(value) and not isinstance(value, str) and getattr(value, "__module__", "") == module:
            assert value.__doc__, f"{module}.{name} has no docstring"


def test_light_modules_import_no_torch() -> None:
    code = (
        "import sys\n"
        f"for name in {('vfp_il_components.settings', *TRAINER_CONFIGS)!r}:\n"
        "    __import__(name)\n"
        "heavy = sorted(m for m in ('torch', 'numpy') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_every_trainer_is_registered_from_its_own_config_module() -> None:
    specs = PluginHost().registry.specs(ComponentKind.TRAINER)
    assert set(TRAINER_CONFIGS) <= {spec.config.__module__ for spec in specs}
