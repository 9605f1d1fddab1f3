"""The merge rules of docs/configs.md: deleting inherited entries, command-line overrides and type changes.

These use the vfp-sample plugin's components, plus vfp-il-components' ``l2`` loss for a second loss type.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_config import BASE, problems, write

from vfp.config import ConfigError, load_experiment

TWO_LOSSES = BASE.replace(
    "  fit: {type: sample_huber}\n", "  fit: {type: sample_huber}\n  extra: {type: sample_huber, delta: 2.0}\n"
)


def test_a_null_entry_deletes_an_inherited_loss(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", TWO_LOSSES)
    child = write(tmp_path, "child.yaml", "extends: ./base.yaml\nlosses:\n  extra: null\n")
    assert list(load_experiment(child).config.losses) == ["fit"]


def test_a_null_entry_deletes_an_inherited_model_component_and_optimizer(tmp_path: Path) -> None:
    base = BASE.replace("hidden: 8}\n", "hidden: 8}\n  aux:\n    arch: {type: sample_linear}\n    optimizer: slow\n")
    base = base.replace("lr: 1e-3}\n", "lr: 1e-3}\n  slow: {type: sample_sgd, lr: 1e-4}\n")
    write(tmp_path, "base.yaml", base)
    assert set(load_experiment(tmp_path / "base.yaml").config.model) == {"net", "aux"}
    child = write(tmp_path, "child.yaml", "extends: ./base.yaml\nmodel: {aux: null}\noptimizers: {slow: null}\n")
    config = load_experiment(child).config
    assert list(config.model) == ["net"]
    assert list(config.optimizers) == ["default"]


def test_a_null_that_deletes_nothing_is_an_error_at_its_line(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", BASE)
    child = write(tmp_path, "child.yaml", "extends: ./base.yaml\nlosses:\n  fti: null\n")
    with pytest.raises(ConfigError) as info:
        load_experiment(child)
    (issue,) = info.value.issues
    assert (issue.file, issue.line, issue.path) == (str(child), 3, "losses.fti")
    assert "null deletes an inherited entry" in issue.message
    assert "entries of 'losses': fit" in issue.message


def test_a_second_parent_can_delete_an_entry_of_the_first(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", TWO_LOSSES)
    write(tmp_path, "no_extra.yaml", "losses: {extra: null}\n")
    child = write(tmp_path, "child.yaml", "extends: [./base.yaml, ./no_extra.yaml]\n")
    assert list(load_experiment(child).config.losses) == ["fit"]


def test_null_stays_a_value_outside_the_named_component_maps(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", BASE + "  nan_at_step: 3\n")  # BASE ends in the trainer section
    child = write(
        tmp_path, "child.yaml", "extends: ./base.yaml\ntraining: {grad_clip_norm: null}\ntrainer: {nan_at_step: null}\n"
    )
    config = load_experiment(child).config
    assert config.training.grad_clip_norm is None
    assert config.trainer.nan_at_step is None  # type: ignore[attr-defined]


def test_tilde_override_deletes_an_entry(tmp_path: Path) -> None:
    path = write(tmp_path, "exp.yaml", TWO_LOSSES)
    assert list(load_experiment(path, ["~losses.extra"]).config.losses) == ["fit"]


def test_tilde_override_deletes_any_key_so_its_default_applies(tmp_path: Path) -> None:
    path = write(tmp_path, "exp.yaml", BASE + "training: {max_steps: 7, grad_clip_norm: 5.0}\n")
    config = load_experiment(path, ["~training.grad_clip_norm"]).config
    assert config.training.grad_clip_norm == 1.0
    assert config.training.max_steps == 7


def test_tilde_override_deletes_a_list_item_and_later_items_keep_their_lines(tmp_path: Path) -> None:
    text = BASE + "logging:\n  callbacks:\n    - {type: jsonl}\n    - {type: tensorboard, nonsense: 1}\n"
    path = write(tmp_path, "exp.yaml", text)
    found = problems(path, "~logging.callbacks.0")
    assert found["logging.callbacks.0.nonsense"][0] == 16


def test_tilde_override_of_a_missing_key_names_what_is_there(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "exp.yaml", BASE), "~losses.fti")
    (message,) = [message for _, message in found.values()]
    assert "nothing to delete: 'losses' has no key 'fti' (it has: fit)" in message


def test_tilde_override_takes_no_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"~KEY\.PATH deletes a key and takes no value"):
        load_experiment(write(tmp_path, "exp.yaml", BASE), ["~seed=3"])


def test_a_null_override_of_an_entry_deletes_it_like_in_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, "exp.yaml", TWO_LOSSES)
    assert list(load_experiment(path, ["losses.extra=null"]).config.losses) == ["fit"]


def test_an_override_that_changes_the_type_replaces_the_section(tmp_path: Path) -> None:
    path = write(
        tmp_path, "exp.yaml", BASE.replace("{type: sample_huber}", "{type: sample_huber, delta: 3.0, weight: 2}")
    )
    loss = load_experiment(path, ["losses.fit.type=l2"]).config.losses["fit"]
    assert loss.type == "l2"
    assert loss.weight == 1.0  # the old section's weight went with it
    assert not hasattr(loss, "delta")


def test_keys_given_on_the_command_line_survive_a_type_change_in_any_order(tmp_path: Path) -> None:
    path = write(tmp_path, "exp.yaml", BASE.replace("{type: sample_huber}", "{type: sample_huber, delta: 3.0}"))
    for overrides in (
        ["losses.fit.reduction=sum", "losses.fit.type=l2"],
        ["losses.fit.type=l2", "losses.fit.reduction=sum"],
    ):
        loss = load_experiment(path, overrides).config.losses["fit"]
        assert (loss.type, loss.reduction) == ("l2", "sum"), overrides  # type: ignore[attr-defined]


def test_a_mapping_override_merges_into_the_section(tmp_path: Path) -> None:
    path = write(tmp_path, "exp.yaml", BASE.replace("lr: 1e-3}", "lr: 1e-3, momentum: 0.5}"))
    optimizer = load_experiment(path, ["optimizers.default={lr: 0.25}"]).config.optimizers["default"]
    assert (optimizer.type, optimizer.lr, optimizer.momentum) == ("sample_sgd", 0.25, 0.5)  # type: ignore[attr-defined]


def test_a_list_override_replaces_the_list(tmp_path: Path) -> None:
    path = write(tmp_path, "exp.yaml", BASE + "logging: {callbacks: [{type: jsonl}, {type: tensorboard}]}\n")
    config = load_experiment(path, ["logging.callbacks=[{type: jsonl}]"]).config
    assert [callback.type for callback in config.logging.callbacks] == ["jsonl"]


def test_an_override_through_a_scalar_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'seed' is not a mapping or list"):
        load_experiment(write(tmp_path, "exp.yaml", BASE + "seed: 1\n"), ["seed.value=3"])


def test_an_error_in_an_overridden_section_names_the_command_line(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "exp.yaml", BASE), "losses.fit.type=l2", "losses.fit.delta=2")
    line, _ = found["losses.fit.delta"]
    assert line is None
    with pytest.raises(ConfigError) as info:
        load_experiment(tmp_path / "exp.yaml", ["losses.fit.type=l2", "losses.fit.delta=2"])
    (issue,) = info.value.issues
    assert "losses.fit.delta=2" in issue.file


@pytest.mark.parametrize(
    ("word", "expected"),
    [("~losses.flow", True), ("seed=3", True), ("~/exps/a.yaml", False), ("exp.yaml", False), ("quickstart", False)],
)
def test_override_words_are_told_from_config_references(word: str, expected: bool) -> None:
    from vfp.config._compose import is_override

    assert is_override(word) is expected


def test_a_null_over_a_null_that_deleted_nothing_is_still_reported(tmp_path: Path) -> None:
    write(
        tmp_path,
        "base.yaml",
        BASE.replace("  fit: {type: sample_huber}\n", "  fit: {type: sample_huber}\n  fti: null\n"),
    )
    child = write(tmp_path, "child.yaml", "extends: ./base.yaml\nlosses: {fti: null}\n")
    found = problems(child)
    assert "null deletes an inherited entry" in found["losses.fti"][1]


def test_overrides_index_into_lists_from_either_end(tmp_path: Path) -> None:
    path = write(tmp_path, "exp.yaml", BASE + "logging: {callbacks: [{type: jsonl}, {type: tensorboard}]}\n")
    config = load_experiment(path, ["~logging.callbacks.-1", "logging.callbacks.0.type=tensorboard"]).config
    assert [callback.type for callback in config.logging.callbacks] == ["tensorboard"]
    found = problems(path, "logging.callbacks.1.nonsense=1")
    line, message = found["logging.callbacks.1.nonsense"]
    assert line is None  # written on the command line, not in the file
    assert "unknown key 'nonsense'" in message
    found = problems(path, "logging.callbacks.2.type=jsonl")
    assert "'logging.callbacks' is a list of 2: no item 2" in found["logging.callbacks.2.type"][1]
