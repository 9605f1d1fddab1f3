"""Safe YAML reading: floats, refused tags, duplicate keys, and line numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from vfp.config import ConfigError, parse_yaml


@pytest.mark.parametrize(("text", "expected"), [("1e-4", 1e-4), ("3E+2", 300.0), ("-2.5e-3", -2.5e-3), (".5", 0.5)])
def test_exponent_numbers_are_floats(text: str, expected: float) -> None:
    value = parse_yaml(f"lr: {text}", "x.yaml").data["lr"]
    assert isinstance(value, float)
    assert value == pytest.approx(expected)


def test_integers_and_strings_keep_their_types() -> None:
    data = parse_yaml("a: 10\nb: '1e-4'\nc: e5\nd: 1_000", "x.yaml").data
    assert data == {"a": 10, "b": "1e-4", "c": "e5", "d": 1000}


def test_python_object_tag_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f'data: !!python/object/apply:os.system ["touch {marker}"]\n'
    with pytest.raises(ConfigError, match="safe_load only") as info:
        parse_yaml(text, "evil.yaml")
    assert not marker.exists()
    assert info.value.issues[0].line == 1


def test_python_tag_on_a_scalar_is_refused() -> None:
    with pytest.raises(ConfigError, match="python/name"):
        parse_yaml("x: !!python/name:os.system ''\n", "evil.yaml")


def test_duplicate_keys_are_errors_with_their_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml("a:\n  b: 1\n  b: 2\n", "dup.yaml")
    issue = info.value.issues[0]
    assert (issue.line, issue.path, issue.message) == (3, "a.b", "duplicate key")


def test_every_key_records_its_line() -> None:
    located = parse_yaml("top:\n  inner:\n    - x: 1\n    - y: 2\n", "f.yaml")
    assert located.origins[("top", "inner", 1, "y")].line == 4
    assert located.origin_of(("top", "inner", 0, "missing")).line == 3


def test_syntax_error_names_the_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml("a: [1, 2\nb: 3\n", "broken.yaml")
    assert info.value.issues[0].file == "broken.yaml"
    assert info.value.issues[0].line is not None
