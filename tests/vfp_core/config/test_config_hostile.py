"""Hostile configs (issue 13, "Configs"): each is a config error with file, line and key, never a traceback.

Reading limits (file size, values once aliases are expanded, nesting depth, extends depth, problems
reported) stop bombs quickly and say which limit was hit; booleans are not numbers; numbers are finite
and within the bounds a run can hold; ``init_from`` must look like a checkpoint; task options are the
task's own. A few cases also go through `vfp config validate` to check exit 2 and plain printing.
"""

from __future__ import annotations

import os
import resource
import time
import zipfile
from pathlib import Path

import pytest
from vfp_test_support import vfp

from vfp.config import ConfigError, load_experiment, parse_yaml
from vfp.config._compose import MAX_EXTENDS_DEPTH
from vfp.config._errors import MAX_ISSUES_SHOWN, ConfigIssue
from vfp.config._yaml import MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUES

BASE = "quickstart"
BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)
"""The "billion laughs": 9^9 strings once expanded, from a few hundred bytes."""


def _error(text: str, file: str = "x.yaml") -> ConfigError:
    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, file)
    assert time.perf_counter() - started < 5.0
    return info.value


def _load_error(ref: str | Path, *overrides: str) -> ConfigError:
    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_experiment(ref, overrides)
    assert time.perf_counter() - started < 5.0
    return info.value


def _one(error: ConfigError) -> ConfigIssue:
    assert len(error.issues) == 1, error.render()
    return error.issues[0]


# Reading: limits and malformed text ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * 1000 + "]" * 1000,
        "".join("  " * i + f"k{i}:\n" for i in range(600)) + "  " * 600 + "x: 1\n",
    ],
    ids=["flow", "block"],
)
def test_deep_nesting_is_the_depth_limit(text: str) -> None:
    issue = _one(_error(text))
    assert "limit: nesting depth" in issue.message
    assert str(MAX_DEPTH) in issue.message
    assert issue.line is not None


@pytest.mark.parametrize("text", ["loop: &l [*l]\n", "loop: &l {a: *l}\n"])
def test_a_self_referencing_alias_is_the_depth_limit(text: str) -> None:
    issue = _one(_error(text))
    assert "limit: nesting depth" in issue.message
    assert issue.line == 1


def test_a_billion_laughs_stops_at_the_value_limit() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    issue = _one(_error(BOMB))
    assert "limit: values per file" in issue.message
    assert f"{MAX_VALUES}" in issue.message
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB: far below 1 GB


def test_a_merge_key_bomb_is_bounded() -> None:
    text = "a: &a {x: 1, y: 2}\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} {{<<: [{', '.join([f'*{chr(97 + i)}'] * 9)}]}}\n" for i in range(8)
    )
    started = time.perf_counter()
    try:
        parse_yaml(text, "merge.yaml")
        refused = ""
    except ConfigError as exc:
        refused = exc.render()
    assert time.perf_counter() - started < 5.0
    assert not refused or "limit" in refused


def test_merge_keys_are_overridden_by_the_mapping_s_own_keys() -> None:
    data = parse_yaml("base: &b {x: 1, y: 2}\nd: &d {<<: *b, y: 3}\ne: [*d, *d]\n", "m.yaml").data
    assert data["d"] == {"x": 1, "y": 3}
    assert data["e"] == [data["d"], data["d"]]  # an alias of a merged mapping, read twice
    assert "duplicate key" in _one(_error("d: {x: 1, x: 2}\n")).message


def test_many_keys_are_the_value_limit_and_fast() -> None:
    text = "".join(f"k{i}: {i}\n" for i in range(MAX_VALUES))
    issue = _one(_error(text))
    assert "limit: values per file" in issue.message


def test_a_large_file_is_refused_by_its_size_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("w") as stream:  # ~10 MB, a million keys
        for i in range(1_000_000):
            stream.write(f"k{i}: {i}\n")
    started = time.perf_counter()
    issue = _one(_load_error(big))
    assert time.perf_counter() - started < 1.0
    assert issue.file == str(big.resolve())
    assert "limit: file size" in issue.message
    assert f"{MAX_FILE_BYTES >> 20} MiB" in issue.message


@pytest.mark.parametrize(("char", "line"), [("\x00", 2), ("\x1b", 2), ("\x07", 2)])
def test_control_characters_name_their_line(char: str, line: int) -> None:
    issue = _one(_error(f"a: 1\nb: x{char}y\n"))
    assert issue.line == line
    assert "control character" in issue.message


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("seed: !!float abc\n", "!!float"),
        ("seed: !!int x1\n", "!!int"),
        ("t: !!timestamp 2020-13-45\n", "!!timestamp"),
        ("seed: !!int ''\n", "!!int"),
        ("seed: !!float\n", "!!float"),
        ("t: !!timestamp ''\n", "!!timestamp"),
    ],
)
def test_a_safe_tag_whose_value_does_not_parse(text: str, tag: str) -> None:
    issue = _one(_error(text))
    assert issue.line == 1
    assert tag in issue.message


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_non_utf8_files_name_their_line_directly_via_extends_and_via_a_model_file(tmp_path: Path) -> None:
    latin1 = "name: exp\ndescription: caf\xe9\n".encode("latin-1")
    direct = _one(_load_error(_write(tmp_path / "direct.yaml", latin1)))
    assert (direct.line, "not UTF-8" in direct.message) == (2, True)
    _write(tmp_path / "parent.yaml", latin1)
    child = _write(tmp_path / "child.yaml", "extends: ./parent.yaml\n")
    assert _one(_load_error(child)).file == str((tmp_path / "parent.yaml").resolve())
    _write(tmp_path / "arch.yaml", b"type: mlp\n# \xff\xfe\n")
    uses = _write(tmp_path / "uses.yaml", f"extends: {BASE}\nmodel:\n  prior:\n    arch: ./arch.yaml\n")
    issue = _one(_load_error(uses))
    assert issue.file == str((tmp_path / "arch.yaml").resolve())
    assert issue.line == 2


def test_a_bomb_via_extends_and_via_a_model_file(tmp_path: Path) -> None:
    _write(tmp_path / "bomb.yaml", BOMB)
    child = _write(tmp_path / "child.yaml", f"extends: [{BASE}, ./bomb.yaml]\n")
    assert "limit: values per file" in _one(_load_error(child)).message
    _write(tmp_path / "arch.yaml", "type: mlp\n" + BOMB)
    uses = _write(tmp_path / "uses.yaml", f"extends: {BASE}\nmodel:\n  prior:\n    arch: ./arch.yaml\n")
    assert "limit: values per file" in _one(_load_error(uses)).message


def test_a_thousand_long_extends_chain_is_the_extends_limit(tmp_path: Path) -> None:
    for i in range(1000):
        _write(tmp_path / f"c{i}.yaml", f"extends: ./c{i + 1}.yaml\n" if i < 999 else f"extends: {BASE}\n")
    issue = _one(_load_error(tmp_path / "c0.yaml"))
    assert "limit: extends depth" in issue.message
    assert issue.path == "extends"
    assert issue.file == str((tmp_path / f"c{MAX_EXTENDS_DEPTH - 1}.yaml").resolve())
    assert issue.line == 1


def test_a_diamond_of_extends_is_the_file_limit(tmp_path: Path) -> None:
    _write(tmp_path / "leaf.yaml", f"extends: {BASE}\n")
    for level in range(6):  # 10^6 reads without a budget
        below = "leaf" if level == 0 else f"d{level - 1}"
        _write(tmp_path / f"d{level}.yaml", f"extends: [{', '.join([f'./{below}.yaml'] * 10)}]\n")
    assert "limit: files per experiment" in _one(_load_error(tmp_path / "d5.yaml")).message


def test_circular_extends_names_the_line_that_closes_it(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", "name: a\nextends: ./b.yaml\n")
    _write(tmp_path / "b.yaml", "# b\n\nextends: ./a.yaml\n")
    issue = _one(_load_error(tmp_path / "a.yaml"))
    assert (issue.file, issue.line, issue.path) == (str((tmp_path / "b.yaml").resolve()), 3, "extends")
    assert "circular extends" in issue.message


def test_an_unknown_arch_reference_names_its_key(tmp_path: Path) -> None:
    child = _write(tmp_path / "c.yaml", f"extends: {BASE}\nmodel:\n  prior:\n    arch: '3'\n")
    issue = _one(_load_error(child))
    assert (issue.line, issue.path) == (4, "model.prior.arch")


@pytest.mark.parametrize(
    "override", ["model.\u00b9=1", "~logging.callbacks.\u0663", "model.prior.arch.hidden_dims.\u00b2=1"]
)
def test_an_override_path_with_non_ascii_digits_is_a_key(override: str) -> None:
    assert _one(_load_error(BASE, override)).file.startswith("<command line")


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "exp.yaml"
    os.mkfifo(fifo)
    assert "not a regular file" in _one(_load_error(fifo)).message
    child = _write(tmp_path / "child.yaml", "extends: ./exp.yaml\n")
    assert "is not a regular file" in _one(_load_error(child)).message


def test_problems_listed_are_capped() -> None:
    issues = [ConfigIssue("f.yaml", i, f"k{i}", "bad") for i in range(MAX_ISSUES_SHOWN + 7)]
    text = ConfigError(issues).render()
    assert text.count("\n") == MAX_ISSUES_SHOWN + 1
    assert "... and 7 more (limit: problems reported" in text


# Values: strict types, finite numbers, bounds ----------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "path", "words"),
    [
        ("data.batch_size=true", "data.batch_size", "boolean"),
        ("checkpointing.keep_last=true", "checkpointing.keep_last", "boolean"),
        ("trainer.flow.logit_normal_std=true", "trainer.flow.logit_normal_std", "boolean"),
        ("training.max_steps=false", "training.max_steps", "boolean"),
        ("optimizers.default.lr=.inf", "optimizers.default.lr", "finite"),
        ("optimizers.default.lr=.nan", "optimizers.default.lr", "nan"),
        ("seed=123456789012345678901234567890", "seed", "less than or equal to 4294967295"),
        ("seed=-1", "seed", "greater than or equal to 0"),
        ("data.history=9223372036854775808", "data.history", "less than or equal"),
        ("model.prior.arch.hidden_dims=[100000000]", "model.prior.arch.hidden_dims.0", "less than or equal to 65536"),
        ("trainer.experts=1000000", "trainer.experts", "less than or equal"),
        ("losses.alignment.reach=1e308", "losses.alignment.reach", "less than or equal"),
        ("data.generate.task_options={speed: true}", "data.generate.task_options", "speed: expected a number"),
        ("data.generate.task_options={reach: 1.0}", "data.generate.task_options", "reach: unknown option"),
        ("data.generate.task_options={speed: 0.5}", "data.generate.task_options", "must not exceed max_step"),
        ("data.generate.task_options={max_steps: .inf}", "data.generate.task_options", "max_steps"),
    ],
)
def test_values_a_run_cannot_use_are_refused_at_validate_time(override: str, path: str, words: str) -> None:
    issue = _one(_load_error(BASE, override))
    assert issue.path == path, issue
    assert words in issue.message, issue
    assert issue.file.startswith("<command line override")


def test_widths_that_cannot_fit_in_memory_are_refused_with_an_estimate() -> None:
    widths = ", ".join(["65536"] * 256)  # 1.1e12 parameters: 17 TB of training state, more than any machine
    issue = _one(_load_error(BASE, f"model.prior.arch.hidden_dims=[{widths}]"))
    assert issue.path == "model.prior.arch"
    assert "parameters" in issue.message
    assert "GiB" in issue.message
    assert "this machine has" in issue.message


def test_valid_task_options_still_validate() -> None:
    loaded = load_experiment(BASE, ["data.generate.task_options={left_probability: 0.3, max_steps: 40}"])
    assert loaded.config.data.generate.task_options == {"left_probability": 0.3, "max_steps": 40}  # type: ignore[attr-defined]


def test_two_jsonl_loggers_writing_the_same_file_are_refused() -> None:
    override = "logging.callbacks=[{type: jsonl}, {type: jsonl, filename: metrics.jsonl}]"
    issue = _one(_load_error(BASE, override))
    assert issue.path == "logging.callbacks.1"
    assert "written twice" in issue.message
    load_experiment(BASE, ["logging.callbacks=[{type: jsonl}, {type: jsonl, filename: other.jsonl}]"])


def _torch_like_zip(path: Path, *, data_pkl: bool) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl" if data_pkl else "archive/readme.txt", b"x")
    return path


def test_init_from_must_look_like_a_checkpoint(tmp_path: Path) -> None:
    key = "model.prior.init_from"
    for target, words in [
        ("/etc/passwd", "zip archives"),
        (str(_torch_like_zip(tmp_path / "a.pt", data_pkl=False)), "without the data.pkl"),
        (str(tmp_path), "directory without checkpoints"),
    ]:
        issue = _one(_load_error(BASE, f"{key}={target}"))
        assert issue.path == key, issue
        assert words in issue.message, issue
    # Looks like one (weights are checked when training builds the component), or is still to be trained.
    load_experiment(BASE, [f"{key}={_torch_like_zip(tmp_path / 'b.pt', data_pkl=True)}"])
    load_experiment(BASE, [f"{key}={tmp_path / 'not-trained-yet'}"])


# Through the command line: exit 2, one screen, printed as written ------------------------------------


def test_cli_prints_keys_as_written_without_emoji_or_markup(tmp_path: Path) -> None:
    config = _write(tmp_path / "exp[red].yaml", f"extends: {BASE}\n:smile: 1\n':100:': 2\n")
    result = vfp("config", "validate", str(config))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert ":smile:" in result.stderr
    assert ":100:" in result.stderr
    assert "exp[red].yaml:2" in result.stderr
    assert "\U0001f604" not in result.stderr
    assert "\U0001f4af" not in result.stderr


def test_cli_valid_message_prints_a_bracketed_path_as_written(tmp_path: Path) -> None:
    config = _write(tmp_path / "ok[bold]:100:.yaml", f"extends: {BASE}\n")
    result = vfp("config", "validate", str(config))
    assert result.returncode == 0, result.stderr
    assert "ok[bold]:100:.yaml" in result.stderr


@pytest.mark.parametrize(
    "content",
    [b"seed: !!float abc\n", b"a: \x00\n", b"name: caf\xe9\n", BOMB.encode(), b"loop: &l [*l]\n"],
    ids=["float-tag", "nul", "latin-1", "bomb", "self-alias"],
)
def test_cli_exits_2_without_a_traceback(tmp_path: Path, content: bytes) -> None:
    config = _write(tmp_path / "bad.yaml", content)
    result = vfp("config", "validate", str(config))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert str(config) in result.stderr
    assert len(result.stderr.splitlines()) <= 10


@pytest.mark.parametrize("task", ["avoid_obstacle", "ordered_subgoals", "mixture"])
def test_task_option_models_mirror_the_task_dataclasses(task: str) -> None:
    """The light option models that validate ``task_options`` name the same options with the same defaults."""
    import dataclasses

    from vfp_il_components.tasks import get_task
    from vfp_il_components.tasks.options import TASK_OPTION_MODELS

    built = get_task(task)
    fields = {field.name: getattr(built, field.name) for field in dataclasses.fields(built)}  # type: ignore[arg-type]
    model = TASK_OPTION_MODELS[task]
    assert set(model.model_fields) == set(fields)
    assert model().model_dump() == fields
