"""`vfp config validate` refuses what `vfp train` would refuse, with the file and line of the key.

A trainer whose config subclasses ``vfp.TrainerConfig`` declares the model components and losses it
builds (``component_use``); validation checks the experiment against it. The engine makes the same
check after building a 1.0 trainer, with the same messages and locations (``build_trainer``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_config import BASE, write

from vfp import ComponentConfig, ComponentKind, ComponentSpec, ComponentUse, Settings, TrainerConfig
from vfp._plugins import PluginHost, get_host
from vfp.config import ConfigError, ConfigIssue, ExperimentConfig, experiment_json_schema, load_experiment

SAMPLE_TRAINER = "vfp_sample.impl:RegressionTrainer"  # builds model component ``net`` and loss ``fit``
TRAINER = "trainer:\n  type: sample_regression\n"  # the last two lines of BASE


class DeclaredTrainerConfig(TrainerConfig):
    """The sample regression trainer's config, declaring what that trainer builds."""

    report_mae: bool = True
    nan_at_step: int | None = None

    def component_use(self, experiment: ExperimentConfig) -> ComponentUse | None:
        return ComponentUse(models=frozenset({"net"}), losses=frozenset({"fit"}))


class UndeclaredTrainerConfig(TrainerConfig):
    report_mae: bool = True


class RaisingTrainerConfig(TrainerConfig):
    def component_use(self, experiment: ExperimentConfig) -> ComponentUse | None:
        raise KeyError("boom")


class ScheduleSettings(Settings):
    start: float = 0.0


class NestedTrainerConfig(TrainerConfig):
    schedule: ScheduleSettings = ScheduleSettings()


@pytest.fixture
def host() -> PluginHost:
    """The installed plugins plus trainers with TrainerConfig configs (on the sample implementation)."""
    plugin_host = PluginHost()
    for name, config in (
        ("declared", DeclaredTrainerConfig),
        ("undeclared", UndeclaredTrainerConfig),
        ("raising", RaisingTrainerConfig),
        ("nested", NestedTrainerConfig),
    ):
        plugin_host.registry.add(ComponentSpec(ComponentKind.TRAINER, name, config, SAMPLE_TRAINER))
    return plugin_host


def issues_of(path: Path, host: PluginHost, *overrides: str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        load_experiment(path, overrides, host=host)
    return info.value.issues


EXTRAS = "  spare: {type: sample_huber}\n"  # a loss the sample trainer does not use


def base_with_extras(tmp_path: Path) -> Path:
    """A base file with an extra loss (line 9) and an extra model component (line 7), and a child."""
    text = BASE.replace("  fit: {type: sample_huber}\n", "  fit: {type: sample_huber}\n" + EXTRAS)
    text = text.replace("hidden: 8}\n", "hidden: 8}\n  aux: {arch: {type: sample_linear}}\n")
    write(tmp_path, "base.yaml", text)
    return write(tmp_path, "child.yaml", "extends: ./base.yaml\nseed: 4\n")


def test_validate_reports_unused_components_where_the_base_wrote_them(tmp_path: Path, host: PluginHost) -> None:
    child = base_with_extras(tmp_path)
    issues = issues_of(child, host, "trainer.type=declared")
    base = str(tmp_path / "base.yaml")
    assert [(i.file, i.line, i.path) for i in issues] == [(base, 7, "model.aux"), (base, 10, "losses.spare")]
    assert issues[0].message == (
        "trainer 'declared' does not use this model component (it uses: net); remove it or check its name"
    )
    assert issues[1].message == "trainer 'declared' does not use this loss (it uses: fit); remove it or check its name"


def test_validate_and_train_give_the_same_errors(tmp_path: Path, host: PluginHost) -> None:
    import torch

    from vfp.engine.session import build_trainer

    child = base_with_extras(tmp_path)
    at_validate = issues_of(child, host, "trainer.type=declared")
    config = load_experiment(child, host=host).config  # the 1.0 sample trainer declares nothing: valid
    with pytest.raises(ConfigError) as info:
        build_trainer(config, host, device=torch.device("cpu"), config_file=str(child))
    at_train = info.value.issues
    assert [str(i).replace("'sample_regression'", "'declared'") for i in at_train] == [str(i) for i in at_validate]


def test_validate_reports_a_missing_component_at_its_section(tmp_path: Path, host: PluginHost) -> None:
    path = write(tmp_path, "exp.yaml", BASE.replace("  fit: {type: sample_huber}\n", "  fiit: {type: sample_huber}\n"))
    issues = {i.path: i for i in issues_of(path, host, "trainer.type=declared")}
    assert issues["losses.fit"].line == 7  # the line of `losses:`
    assert issues["losses.fit"].message == "trainer 'declared' needs a loss named 'fit'; the config defines: fiit"
    assert "does not use this loss" in issues["losses.fiit"].message


def test_a_missing_section_is_reported_at_the_trainer_type(tmp_path: Path, host: PluginHost) -> None:
    text = BASE.replace("losses:\n  fit: {type: sample_huber}\n", "").replace(TRAINER, "trainer:\n  type: declared\n")
    path = write(tmp_path, "exp.yaml", text)
    (issue,) = issues_of(path, host)
    assert (issue.file, issue.line, issue.path) == (str(path), 10, "losses.fit")  # the line of trainer.type
    (issue,) = issues_of(path, host, "trainer.type=declared")
    assert "trainer.type=declared" in issue.file  # where the trainer was chosen


def test_the_train_time_check_names_the_file_and_line_through_extends(tmp_path: Path, host: PluginHost) -> None:
    import torch

    from vfp.engine.session import build_trainer

    write(
        tmp_path, "base.yaml", BASE.replace("  fit: {type: sample_huber}\n", "  fit: {type: sample_huber}\n" + EXTRAS)
    )
    child = write(tmp_path, "child.yaml", "extends: ./base.yaml\nseed: 4\n")
    config = load_experiment(child, host=host).config
    with pytest.raises(ConfigError) as info:
        build_trainer(config, host, device=torch.device("cpu"), config_file=str(child))
    (issue,) = info.value.issues
    assert (issue.file, issue.line, issue.path) == (str(tmp_path / "base.yaml"), 9, "losses.spare")


def test_a_trainer_that_declares_nothing_is_checked_only_when_built(tmp_path: Path, host: PluginHost) -> None:
    child = base_with_extras(tmp_path)
    config = load_experiment(child, ["trainer.type=undeclared"], host=host).config
    assert set(config.losses) == {"fit", "spare"}


def test_a_component_use_that_raises_is_a_config_error_of_the_trainer(tmp_path: Path, host: PluginHost) -> None:
    (issue,) = issues_of(write(tmp_path, "exp.yaml", BASE), host, "trainer={type: raising}")
    assert issue.path == "trainer"
    assert "component_use of 'raising' raised KeyError" in issue.message


def test_an_optimizer_no_component_uses_is_found_by_validation(tmp_path: Path) -> None:
    path = write(tmp_path, "exp.yaml", BASE.replace("lr: 1e-3}\n", "lr: 1e-3}\n  spare: {type: sample_sgd}\n"))
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    (issue,) = info.value.issues
    assert (issue.line, issue.path) == (11, "optimizers.spare")
    assert issue.message.startswith("no model component uses this optimizer")


def test_a_frozen_components_optimizer_counts_as_used(tmp_path: Path) -> None:
    text = BASE.replace("hidden: 8}\n", "hidden: 8}\n    freeze: true\n    optimizer: slow\n")
    text = text.replace("lr: 1e-3}\n", "lr: 1e-3}\n  slow: {type: sample_sgd}\n")
    path = write(tmp_path, "exp.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert [i.path for i in info.value.issues] == ["optimizers.default"]


def test_a_circular_extends_names_the_file_and_line_that_closes_the_cycle(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "seed: 1\nextends: ./b.yaml\n")
    b = write(tmp_path, "b.yaml", "# b extends a\nextends: ./a.yaml\n")
    with pytest.raises(ConfigError) as info:
        load_experiment(tmp_path / "a.yaml")
    (issue,) = info.value.issues
    assert (issue.file, issue.line, issue.path) == (str(b), 2, "extends")


def test_an_unknown_key_in_a_settings_block_names_its_line(tmp_path: Path, host: PluginHost) -> None:
    text = BASE.replace(TRAINER, "trainer:\n  type: nested\n  schedule:\n    strat: 1\n")
    (issue,) = issues_of(write(tmp_path, "exp.yaml", text), host)
    assert (issue.line, issue.path) == (14, "trainer.schedule.strat")
    assert "did you mean 'start'" in issue.message


def test_trainer_and_callback_bases_belong_to_their_kind() -> None:
    ComponentSpec(ComponentKind.TRAINER, "plain", ComponentConfig, SAMPLE_TRAINER)  # 1.0: accepted
    ComponentSpec(ComponentKind.TRAINER, "declared", DeclaredTrainerConfig, SAMPLE_TRAINER)
    with pytest.raises(TypeError, match=r"subclasses vfp\.TrainerConfig, the base of trainer configs"):
        ComponentSpec(ComponentKind.MODEL, "wrong", DeclaredTrainerConfig, "pkg.mod:build")


def test_settings_are_strict() -> None:
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        ScheduleSettings.model_validate({"start": 1.0, "stop": 2.0})


def test_component_use_accepts_any_iterable_of_names() -> None:
    use = ComponentUse(models={"a", "b"}, losses=["flow"])  # type: ignore[arg-type]
    assert use == ComponentUse(models=frozenset({"a", "b"}), losses=frozenset({"flow"}))


@pytest.mark.parametrize("key", ["name", "description", "seed", "threads", "model", "losses", "optimizers"])
def test_experiment_keys_are_described_in_the_schema(key: str) -> None:
    schema: dict[str, Any] = experiment_json_schema(get_host().registry)
    assert schema["properties"][key].get("description")
