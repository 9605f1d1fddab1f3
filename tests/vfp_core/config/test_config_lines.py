"""Every config error names the file and line where the key was written, through ``extends`` and ``arch``."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_config import BASE, write

from vfp.config import ConfigError, ConfigIssue, load_experiment


def only_issue(path: Path, *overrides: str) -> ConfigIssue:
    with pytest.raises(ConfigError) as info:
        load_experiment(path, overrides)
    (issue,) = info.value.issues
    return issue


def test_a_bad_key_of_a_section_both_files_write_names_the_base(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yaml", BASE.replace("lr: 1e-3}", "lr: 1e-3, momentun: 0.9}"))
    child = write(tmp_path, "child.yaml", "extends: ./base.yaml\noptimizers:\n  default: {lr: 0.5}\n")
    issue = only_issue(child)
    assert (issue.file, issue.line, issue.path) == (str(base), 10, "optimizers.default.momentun")


def test_a_bad_value_the_child_overrode_names_the_child(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", BASE)
    child = write(tmp_path, "child.yaml", "extends: ./base.yaml\noptimizers:\n  default: {lr: -1}\n")
    issue = only_issue(child)
    assert (issue.file, issue.line, issue.path) == (str(child), 3, "optimizers.default.lr")


def test_an_error_in_an_arch_file_of_a_base_names_the_arch_file(tmp_path: Path) -> None:
    arch = write(tmp_path, "base/models/net.yaml", "type: sample_linear\nhiden: 3\n")
    write(tmp_path, "base/base.yaml", BASE.replace("arch: {type: sample_linear, hidden: 8}", "arch: ./models/net.yaml"))
    child = write(tmp_path, "child.yaml", "extends: ./base/base.yaml\nseed: 2\n")
    issue = only_issue(child)
    assert (issue.file, issue.line, issue.path) == (str(arch), 2, "model.net.arch.hiden")


def test_a_missing_arch_file_names_the_line_that_references_it(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yaml", BASE.replace("arch: {type: sample_linear, hidden: 8}", "arch: ./nope.yaml"))
    child = write(tmp_path, "child.yaml", "extends: ./base.yaml\n")
    issue = only_issue(child)
    assert (issue.file, issue.line) == (str(base), 6)
    assert "referenced config file './nope.yaml' not found" in issue.message


def test_an_unknown_type_the_child_writes_names_the_child(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", BASE)
    child = write(tmp_path, "child.yaml", "extends: ./base.yaml\nlosses:\n  fit:\n    type: sample_hubr\n")
    issue = only_issue(child)
    assert (issue.file, issue.line, issue.path) == (str(child), 4, "losses.fit.type")


def test_a_type_change_in_the_child_drops_the_base_keys_and_their_lines(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", BASE.replace("{type: sample_huber}", "{type: sample_huber, delta: 3.0}"))
    child = write(tmp_path, "child.yaml", "extends: ./base.yaml\nlosses:\n  fit: {type: l2, delta: 1.0}\n")
    issue = only_issue(child)  # delta is the child's own (unknown to l2), not the base's
    assert (issue.file, issue.line, issue.path) == (str(child), 3, "losses.fit.delta")


def test_a_missing_extends_target_names_the_extends_line(tmp_path: Path) -> None:
    child = write(tmp_path, "child.yaml", "seed: 1\nextends: ./nope.yaml\n")
    issue = only_issue(child)
    assert (issue.file, issue.line) == (str(child), 2)


def test_a_cross_check_of_an_inherited_section_names_the_base(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yaml", BASE.replace("hidden: 8}", "hidden: 8}\n    optimizer: slow"))
    child = write(tmp_path, "child.yaml", "extends: ./base.yaml\nseed: 1\n")
    with pytest.raises(ConfigError) as info:
        load_experiment(child)
    found = {issue.path: (issue.file, issue.line) for issue in info.value.issues}
    assert found == {"model.net.optimizer": (str(base), 7), "optimizers.default": (str(base), 11)}
