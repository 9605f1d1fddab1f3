"""A corpus of damaged HDF5 files: each is refused with one clean message naming the file, episode and key.

Every case is built here with h5py. In this process, each goes through ``vfp data inspect`` (Typer's runner)
and the ``hdf5`` dataloader's ``setup()`` (what ``vfp train`` calls); ``test_data_hostile_cli.py`` runs a
representative subset through the real command line, ``vfp train`` included.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from vfp_il_components.cli import app
from vfp_il_components.data.errors import DataError, DataWarning
from vfp_il_components.data.hdf5 import build_hdf5_data
from vfp_il_components.data.inspect import inspect_dataset
from vfp_il_components.data.specs import HDF5DataConfig

runner = CliRunner()
SECONDS = 5.0
"""Every refusal must come within this many seconds."""

Build = Callable[[Path], None]


def write_demos(path: Path, demos: int = 3, length: int = 12, **dataset_options: object) -> None:
    """A valid file: ``demos`` demos of ``length`` steps (obs/state (T, 4), actions (T, 2)), varying values."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as file:
        for i in range(demos):
            demo = file.create_group(f"data/demo_{i}")
            demo.create_dataset("obs/state", data=rng.normal(size=(length, 4)).astype(np.float32), **dataset_options)
            demo.create_dataset("actions", data=rng.normal(size=(length, 2)).astype(np.float32), **dataset_options)
            demo.attrs["num_samples"] = length


def _replace(path: Path, name: str, data: object, **options: object) -> None:
    with h5py.File(path, "a") as file:
        del file[name]
        file.create_dataset(name, data=data, **options)


def with_valid_demos(edit: Callable[[h5py.File], None]) -> Build:
    def build(path: Path) -> None:
        write_demos(path)
        with h5py.File(path, "a") as file:
            edit(file)

    return build


def replace_actions(data: Callable[[], object], demo: str = "demo_0") -> Build:
    def build(path: Path) -> None:
        write_demos(path)
        _replace(path, f"data/{demo}/actions", data())

    return build


def replace_dataset(demo: str, key: str, data: np.ndarray) -> Build:
    def build(path: Path) -> None:
        write_demos(path)
        _replace(path, f"data/{demo}/{key}", data)

    return build


def set_attr(name: str, value: object, where: str = "/") -> Build:
    return with_valid_demos(lambda file: file[where].attrs.__setitem__(name, value))


def actions_as_group(file: h5py.File) -> None:
    del file["data/demo_0/actions"]
    file.create_group("data/demo_0/actions/x")


def demo_as_dataset(file: h5py.File) -> None:
    del file["data/demo_1"]
    file.create_dataset("data/demo_1", data=np.zeros((12, 2), np.float32))


def all_empty(path: Path) -> None:
    write_demos(path, length=0)


def zeroed_chunk(path: Path) -> None:
    """A stretch of zeroed bytes inside one chunk of data/demo_1/actions (the file is checksummed, as ours are)."""
    write_demos(path, chunks=True, fletcher32=True)
    with h5py.File(path, "r") as file:
        chunk = file["data/demo_1/actions"].id.get_chunk_info(0)
    with path.open("r+b") as handle:
        handle.seek(chunk.byte_offset + 8)
        handle.write(b"\0" * 16)


def zeroed_compressed_chunk(path: Path) -> None:
    """Zeroed bytes over a gzip chunk of data/demo_2/obs/state (no checksum: the inflate fails)."""
    write_demos(path, compression="gzip")
    with h5py.File(path, "r") as file:
        chunk = file["data/demo_2/obs/state"].id.get_chunk_info(0)
    with path.open("r+b") as handle:
        handle.seek(chunk.byte_offset)
        handle.write(b"\0" * chunk.size)


def zeroed_superblock(path: Path) -> None:
    write_demos(path)
    with path.open("r+b") as handle:
        handle.write(b"\0" * 512)


def truncated(path: Path) -> None:
    write_demos(path)
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.truncate(size // 3)


@dataclass(frozen=True)
class Case:
    build: Build
    needles: tuple[str, ...]
    """Text every message must hold (besides the file's path): the episode, the key, what is wrong."""


CASES: dict[str, Case] = {
    "num_samples_text": Case(
        set_attr("num_samples", "many", "data/demo_0"), ("episode demo_0", "key 'num_samples'", "'many'")
    ),
    "num_samples_fraction": Case(
        set_attr("num_samples", 11.5, "data/demo_2"), ("episode demo_2", "key 'num_samples'", "integer")
    ),
    "num_samples_array": Case(
        set_attr("num_samples", np.array([12, 12]), "data/demo_1"), ("episode demo_1", "key 'num_samples'")
    ),
    "string_actions": Case(
        replace_actions(lambda: np.array([["a", "b"]] * 12, dtype=h5py.string_dtype())),
        ("episode demo_0", "key 'actions'", "text"),
    ),
    "numeric_string_actions": Case(
        replace_actions(lambda: np.array([["1.5", "2"]] * 12, dtype="S")), ("episode demo_0", "key 'actions'", "text")
    ),
    "boolean_actions": Case(
        replace_actions(lambda: np.ones((12, 2), dtype=bool), "demo_1"), ("episode demo_1", "key 'actions'", "booleans")
    ),
    "complex_actions": Case(
        replace_actions(lambda: np.ones((12, 2), dtype=np.complex64)), ("episode demo_0", "key 'actions'", "complex")
    ),
    "scalar_actions": Case(replace_actions(lambda: np.float32(3.0)), ("episode demo_0", "key 'actions'", "scalar")),
    "widths_differ": Case(
        replace_actions(lambda: np.zeros((12, 3), np.float32), "demo_2"), ("episode demo_2", "key 'actions'", "(3,)")
    ),
    "actions_as_group": Case(with_valid_demos(actions_as_group), ("episode demo_0", "key 'actions'", "group")),
    "demo_as_dataset": Case(with_valid_demos(demo_as_dataset), ("episode demo_1", "expected a group")),
    "all_empty_demos": Case(all_empty, ("episode demo_0", "key 'actions'", "empty")),
    "fps_text": Case(set_attr("vfp_fps", "ten"), ("key 'vfp_fps'", "'ten'")),
    "fps_zero": Case(set_attr("vfp_fps", 0), ("key 'vfp_fps'", "at least 1")),
    "task_options_bad_json": Case(
        with_valid_demos(lambda f: f.attrs.update({"vfp_task": "mixture", "vfp_task_options": "{num_modes: 3"})),
        ("key 'vfp_task_options'", "not valid JSON"),
    ),
    "task_options_not_an_object": Case(
        with_valid_demos(lambda f: f.attrs.update({"vfp_task": "mixture", "vfp_task_options": "[3]"})),
        ("key 'vfp_task_options'", "JSON object"),
    ),
    "unknown_task": Case(set_attr("vfp_task", "juggling"), ("key 'vfp_task'", "unknown task 'juggling'", "mixture")),
    "unknown_task_option": Case(
        with_valid_demos(
            lambda f: f.attrs.update({"vfp_task": "mixture", "vfp_task_options": json.dumps({"num_mode": 3})})
        ),
        ("key 'vfp_task_options'", "num_mode", "unknown option"),
    ),
    "invalid_task_option": Case(
        with_valid_demos(
            lambda f: f.attrs.update({"vfp_task": "mixture", "vfp_task_options": json.dumps({"num_modes": "x"})})
        ),
        ("key 'vfp_task_options'", "num_modes"),
    ),
    "task_not_text": Case(set_attr("vfp_task", 7), ("key 'vfp_task'", "text")),
    "zeroed_checksummed_chunk": Case(zeroed_chunk, ("episode demo_1", "key 'actions'", "damaged")),
    "zeroed_compressed_chunk": Case(zeroed_compressed_chunk, ("episode demo_2", "key 'obs/state'", "damaged")),
    "zeroed_superblock": Case(zeroed_superblock, ("cannot be opened as HDF5",)),
    "truncated": Case(truncated, ("cannot be opened as HDF5",)),
    "fifo": Case(lambda path: os.mkfifo(path), ("not a regular file (a FIFO)",)),
}
"""Damaged files; each is refused by both `vfp data inspect` and the dataloader (thus `vfp train`)."""

TRAIN_ONLY: dict[str, Case] = {
    "string_state": Case(
        replace_dataset("demo_1", "obs/state", np.array([["1"] * 4] * 12, dtype="S")),
        ("episode demo_1", "key 'obs/state'", "text"),
    ),
    "complex_state": Case(
        replace_dataset("demo_0", "obs/state", np.ones((12, 4), np.complex128)),
        ("episode demo_0", "key 'obs/state'", "complex"),
    ),
    "mask_entry_is_a_group": Case(
        with_valid_demos(lambda f: f.create_group("mask/train/x")), ("key 'mask/train'", "found a group")
    ),
    "num_samples_disagrees": Case(set_attr("num_samples", 99, "data/demo_2"), ("episode demo_2", "says 99")),
}
"""Files ``vfp data inspect`` describes (its job is to show what is there) but training refuses."""


def build_case(tmp_path: Path, name: str, case: Case) -> Path:
    path = tmp_path / f"{name}.hdf5"
    case.build(path)
    return path


def assert_names_the_problem(message: str, path: Path, case: Case) -> None:
    assert str(path) in message
    for needle in case.needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    assert "Traceback" not in message
    assert len(message.splitlines()) <= 3


def setup_data(path: Path) -> None:
    build_hdf5_data(HDF5DataConfig(type="hdf5", path=str(path), horizon=3)).setup()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(CASES))
def test_inspect_refuses_with_file_episode_and_key(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    path = build_case(tmp_path, name, case)
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        inspect_dataset(path)
    assert time.perf_counter() - start < SECONDS
    assert_names_the_problem(str(info.value), path, case)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(CASES))
def test_inspect_command_exits_2_without_a_traceback(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    path = build_case(tmp_path, name, case)
    start = time.perf_counter()
    result = runner.invoke(app, ["inspect", str(path)])
    assert time.perf_counter() - start < SECONDS
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.output.startswith("error: ")
    assert_names_the_problem(result.output.replace("\n", " "), path, case)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted({**CASES, **TRAIN_ONLY}))
def test_the_dataloader_refuses_with_file_episode_and_key(tmp_path: Path, name: str) -> None:
    case = {**CASES, **TRAIN_ONLY}[name]
    path = build_case(tmp_path, name, case)
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        setup_data(path)
    assert time.perf_counter() - start < SECONDS
    assert_names_the_problem(str(info.value), path, case)


def test_the_corpus_starts_from_a_valid_file(tmp_path: Path) -> None:
    """The damage, not the base file, is what each case is refused for."""
    path = tmp_path / "good.hdf5"
    write_demos(path)
    setup_data(path)
    assert inspect_dataset(path)["episodes"] == 3
    checksummed = tmp_path / "checksummed.hdf5"
    write_demos(checksummed, chunks=True, fletcher32=True)
    setup_data(checksummed)


def test_inspect_describes_a_file_training_refuses(tmp_path: Path) -> None:
    path = build_case(tmp_path, "string_state", TRAIN_ONLY["string_state"])
    summary = inspect_dataset(path)
    features = {f["key"]: f for f in summary["features"]}
    assert features["obs/state"]["dtype"] == "float32"
    assert "stats" not in features["obs/state"]
    assert summary["warnings"] == [
        f"{path}, episode demo_1, key 'obs/state': holds |S1 values, but float32 in demo_0 (no statistics)"
    ]


def constant(key: str) -> Build:
    def build(path: Path) -> None:
        write_demos(path)
        with h5py.File(path, "a") as file:
            for demo in file["data"].values():
                shape = demo[key].shape
                del demo[key]
                demo.create_dataset(key, data=np.full(shape, 0.25, np.float32))

    return build


@pytest.mark.parametrize("key", ["actions", "obs/state"])
def test_constant_actions_or_states_are_loaded_with_a_warning(tmp_path: Path, key: str) -> None:
    path = tmp_path / "constant.hdf5"
    constant(key)(path)
    with pytest.warns(DataWarning, match=rf"constant\.hdf5, key '{key}': constant over the training split"):
        setup_data(path)
    result = runner.invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert f"warning: {path}, key '{key}': constant over all 36 steps" in result.stderr
    assert json.loads(result.stdout)["warnings"] == [f"{path}, key '{key}': constant over all 36 steps"]


def test_a_varying_file_loads_without_a_data_warning(tmp_path: Path) -> None:
    path = tmp_path / "good.hdf5"
    write_demos(path)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        setup_data(path)


def test_other_non_regular_files_are_refused(tmp_path: Path) -> None:
    if not Path("/dev/null").exists():
        pytest.skip("no /dev/null")
    link = tmp_path / "null.hdf5"
    link.symlink_to("/dev/null")
    with pytest.raises(DataError, match=r"null\.hdf5: is not a regular file \(a character device\)"):
        setup_data(link)


def test_a_symlink_to_a_regular_file_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "good.hdf5"
    write_demos(path)
    link = tmp_path / "link.hdf5"
    link.symlink_to(path)
    setup_data(link)


def test_writer_output_is_checksummed_so_zeroed_bytes_are_found(tmp_path: Path) -> None:
    """`vfp data demo` files carry fletcher32 checksums: a zeroed stretch of data is an error, not zeros."""
    from vfp_il_components.data.writers import write_hdf5_dataset
    from vfp_il_components.tasks import get_task

    task = get_task("mixture")
    path = write_hdf5_dataset(task.generate_demos(3, 0), tmp_path / "demo.hdf5", task=task)
    with h5py.File(path, "r") as file:
        actions = file["data/demo_1/actions"]
        assert actions.fletcher32
        assert actions.compression == "gzip"
        chunk = actions.id.get_chunk_info(0)
    setup_data_keys = {"state_keys": ["state"]}
    build_hdf5_data(HDF5DataConfig(type="hdf5", path=str(path), horizon=3, **setup_data_keys)).setup()
    damaged = tmp_path / "damaged.hdf5"
    shutil.copy(path, damaged)
    with damaged.open("r+b") as handle:  # the whole chunk, checksum included: the deflate catches it
        handle.seek(chunk.byte_offset)
        handle.write(b"\0" * chunk.size)
    with pytest.raises(DataError, match=r"damaged\.hdf5, episode demo_1, key 'actions': cannot be read; the file"):
        setup_data(damaged)


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"{not json", "is not valid JSON"), (b"\xff\xfe", "is not UTF-8 text"), (b"[1, 2]", "expected a JSON object")],
)
def test_inspect_refuses_a_damaged_lerobot_info_json(tmp_path: Path, content: bytes, needle: str) -> None:
    meta = tmp_path / "ds" / "meta"
    meta.mkdir(parents=True)
    (meta / "info.json").write_bytes(content)
    result = runner.invoke(app, ["inspect", str(tmp_path / "ds")])
    assert result.exit_code == 2, result.output
    assert f"{meta / 'info.json'}: {needle}" in result.output.replace("\n", "")


def test_inspect_needs_no_torch() -> None:
    """`vfp data inspect` answers quickly: checking and describing a file imports h5py and numpy, not torch."""
    import subprocess
    import sys

    code = "import sys, vfp_il_components.data.inspect; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    "keys", [{"action_key": ""}, {"state_keys": [""]}, {"image_keys": ["a\x00b"]}, {"action_key": "/x"}]
)
def test_keys_that_name_no_dataset_are_refused_by_the_config(keys: dict[str, object]) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="is not a dataset key"):
        HDF5DataConfig(type="hdf5", path="x.hdf5", **keys)  # type: ignore[arg-type]
