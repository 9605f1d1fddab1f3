"""The ``metaworld`` env's config and registration: checked without MetaWorld installed (light modules only)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vfp import ComponentKind, EnvConfig
from vfp._plugins import get_host
from vfp_il_components.data.specs import DemoGenerationConfig
from vfp_il_components.envs.metaworld import METAWORLD_TASKS, MetaWorldEnvConfig


def test_the_metaworld_env_is_registered_with_its_config() -> None:
    spec = get_host().registry.get(ComponentKind.ENV, "metaworld")
    assert spec.config is MetaWorldEnvConfig
    assert issubclass(spec.config, EnvConfig)
    assert spec.target == "vfp_il_components.envs.metaworld_env:make_metaworld_env"


def test_the_packaged_tasks_include_a_wall_and_a_drawer() -> None:
    assert len(METAWORLD_TASKS) >= 3
    assert any("wall" in task for task in METAWORLD_TASKS)
    assert any("drawer" in task or "door" in task for task in METAWORLD_TASKS)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"task": "Push Wall"}, "not a MetaWorld 3 task name"),
        ({"task": "push-wall-v2"}, "not a MetaWorld 3 task name"),
        ({"max_episode_steps": 501}, "at most 500"),
        ({"mode_weights": [1.0]}, "2 non-negative weights"),
        ({"mode_weights": [1.0, -1.0]}, "2 non-negative weights"),
        ({"task": "reach-v3", "mode_weights": [0.5, 0.5]}, "has no modes"),
        ({"via_radius": 0.0}, "greater than 0"),
        ({"taks": "push-wall-v3"}, "Extra inputs are not permitted"),
    ],
)
def test_a_bad_metaworld_config_is_refused_with_the_reason(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MetaWorldEnvConfig.model_validate({"type": "metaworld", **fields})


def test_a_good_metaworld_config_keeps_its_fields() -> None:
    config = MetaWorldEnvConfig.model_validate(
        {"type": "metaworld", "task": "drawer-close-v3", "max_episode_steps": 250, "mode_weights": [3, 1]}
    )
    assert (config.task, config.max_episode_steps, config.mode_weights) == ("drawer-close-v3", 250, [3.0, 1.0])


def test_data_generate_accepts_metaworld_tasks_and_names_them_when_wrong() -> None:
    assert DemoGenerationConfig.model_validate({"task": "metaworld/push-wall-v3"}).task == "metaworld/push-wall-v3"
    with pytest.raises(ValidationError, match="metaworld/drawer-close-v3"):
        DemoGenerationConfig.model_validate({"task": "metaworld/push-v3"})
