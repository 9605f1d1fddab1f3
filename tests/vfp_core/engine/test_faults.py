"""Faults around a run: failing or interrupted evaluation, unwritable and full disks, damaged pointers,
hand-edited configs, and paths that would lead outside the run directory.

The misbehaving trainer is a real plugin distribution written into ``tmp_path`` (a dist-info with an
entry point and a module on ``sys.path``), discovered like any installed plugin.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent

import pytest
import torch
from engine_helpers import assert_weights_equal, final_weights, run, sample_config, vfp_cli

import vfp
from vfp._plugins import PluginHost, reset_host
from vfp.config import ConfigError, load_experiment
from vfp.engine import RunDirectoryError, find_checkpoint, load_checkpoint
from vfp.engine.checkpoint import CheckpointWriteError
from vfp.engine.resume import prepare_resume
from vfp.engine.run import ConfigEditedError

FAULTY = '''\
"""A trainer whose evaluation fails or is interrupted on request (fault injection for engine tests)."""
import os
import signal

from pydantic import Field

import vfp
from vfp import ComponentKind, ComponentSpec

VFP_CONTRACT = "1.1"


class FaultyConfig(vfp.ComponentConfig):
    report_mae: bool = True
    nan_at_step: int | None = None
    evaluation: str = Field("ok", pattern="^(ok|raise|sigterm)$")


def make_trainer(config, context):
    from vfp_sample.impl import RegressionTrainer

    class FaultyTrainer(RegressionTrainer):
        def evaluate(self, request):
            if config.evaluation == "raise":
                raise RuntimeError("actions must be 2-D, got shape (8,)")
            if config.evaluation == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            return super().evaluate(request)

    return FaultyTrainer(config, context)


@vfp.hookimpl
def vfp_register_components():
    return [ComponentSpec(ComponentKind.TRAINER, "faulty_regression", FaultyConfig, "vfp_faulty:make_trainer")]
'''


def install_plugin(folder: Path, distribution: str, module: str, source: str) -> None:
    """Write an installed-looking distribution: ``module.py`` and a dist-info with a ``vfp`` entry point."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(dedent(source), encoding="utf-8")
    info = folder / f"{distribution.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1.0\n\n")
    (info / "entry_points.txt").write_text(f"[vfp]\n{module.removeprefix('vfp_')} = {module}\n")


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path (and PYTHONPATH, for subprocesses) holding the ``vfp-faulty`` plugin."""
    folder = tmp_path / "site"
    install_plugin(folder, "vfp-faulty", "vfp_faulty", FAULTY)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]))
    yield folder
    sys.modules.pop("vfp_faulty", None)


@pytest.fixture
def faulty_host(plugin_dir: Path) -> Iterator[PluginHost]:
    host = PluginHost()
    assert "faulty_regression" in host.registry.names("trainer")
    reset_host(host)
    yield host
    reset_host()


def faulty(host: PluginHost, evaluation: str, *overrides: str) -> vfp.ExperimentConfig:
    return sample_config("trainer={type: faulty_regression, evaluation: " + evaluation + "}", *overrides, host=host)


def checkpoint_step(run_dir: Path) -> int:
    step: int = load_checkpoint(find_checkpoint(run_dir))["step"]
    return step


# the end of a run ---------------------------------------------------------------------------------
def test_a_failing_final_evaluation_keeps_the_trained_checkpoint(tmp_path: Path, faulty_host: PluginHost) -> None:
    run_dir = tmp_path / "run"
    result = run(faulty(faulty_host, "raise", "training.max_steps=6"), run_dir, host=faulty_host)
    assert (result.status, result.exit_code, result.step) == ("failed", 1, 6)
    assert checkpoint_step(run_dir) == 6, "the final checkpoint is written before the final evaluation"
    assert "evaluation at step 6 failed (RuntimeError: actions must be 2-D" in result.message
    assert f"training is kept: checkpoint {run_dir / 'checkpoints' / 'step_00000006.pt'}" in result.message
    assert json.loads((run_dir / "status.json").read_text())["status"] == "failed"


def test_a_failing_periodic_evaluation_stops_with_a_checkpoint_of_that_step(
    tmp_path: Path, faulty_host: PluginHost
) -> None:
    run_dir = tmp_path / "run"
    config = faulty(faulty_host, "raise", "training.max_steps=20", "evaluation.every=3", "checkpointing.every=0")
    result = run(config, run_dir, host=faulty_host)
    assert (result.status, result.step) == ("failed", 3)
    assert checkpoint_step(run_dir) == 3
    assert "evaluation at step 3 failed" in result.message


def test_vfp_train_reports_a_failed_evaluation_in_one_message_and_exits_1(tmp_path: Path, plugin_dir: Path) -> None:
    run_dir = tmp_path / "run"
    done = vfp_cli(
        "train", "sample/regression", "trainer={type: faulty_regression, evaluation: raise}",
        "--max-steps", "4", "--run-dir", str(run_dir), "--progress", "none",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "evaluation at step 4 failed (RuntimeError: actions must be 2-D" in done.stderr
    assert checkpoint_step(run_dir) == 4


def test_sigterm_during_the_final_evaluation_exits_143_with_the_checkpoint(
    tmp_path: Path, faulty_host: PluginHost
) -> None:
    run_dir = tmp_path / "run"
    result = run(faulty(faulty_host, "sigterm", "training.max_steps=5"), run_dir, host=faulty_host)
    assert (result.status, result.exit_code) == ("interrupted", 143)
    assert "stopped by SIGTERM at step 5" in result.message
    assert checkpoint_step(run_dir) == 5


def test_evaluating_never_changes_training(tmp_path: Path) -> None:
    """Dropout draws from the global generator: evaluation (with its own stream) must not disturb it."""
    common = ("training.max_steps=8", "model.net.arch.hidden=8", "model.net.arch.dropout=0.3", "checkpointing.every=2")
    run(sample_config(*common, "evaluation.every=0"), tmp_path / "rare")
    run(sample_config(*common, "evaluation.every=1"), tmp_path / "often")
    assert_weights_equal(final_weights(tmp_path / "rare"), final_weights(tmp_path / "often"))
    rare = load_checkpoint(tmp_path / "rare" / "checkpoints" / "step_00000004.pt")["rng"]
    often = load_checkpoint(tmp_path / "often" / "checkpoints" / "step_00000004.pt")["rng"]
    assert torch.equal(rare[0]["torch"], often[0]["torch"])


# unwritable and full disks ------------------------------------------------------------------------
def test_a_run_directory_under_a_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirectoryError, match=r"run directory .*file/run: cannot write .*file/run"):
        run(sample_config("training.max_steps=2"), tmp_path / "file" / "run")


@contextlib.contextmanager
def read_only_folder(folder: Path) -> Iterator[None]:
    """``folder`` made read-only: by permissions, or (as root, whom permissions do not stop) a read-only tmpfs."""
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], check=False)
    if mounted.returncode != 0:
        pytest.skip("running as root and cannot mount a read-only tmpfs")
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_vfp_train_into_a_read_only_directory_says_so_without_a_traceback(tmp_path: Path) -> None:
    with read_only_folder(tmp_path / "ro"):
        done = vfp_cli("train", "sample/regression", "--max-steps", "2", "--run-dir", str(tmp_path / "ro" / "run"))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "error: run directory" in done.stderr
    assert "read-only" in done.stderr
    assert done.stderr.count("error:") == 1


class FillDiskAt:
    """At a step, turns the next checkpoint's temporary file into ``/dev/full``: every write is ENOSPC."""

    def __init__(self, step: int) -> None:
        self.step = step

    @vfp.hookimpl
    def vfp_on_step_end(self, run: vfp.RunInfo, step: int, metrics: object) -> None:
        if step == self.step:
            temp = run.run_dir / "checkpoints" / f".step_{step + 1:08d}.pt.tmp-{os.getpid()}"
            temp.symlink_to("/dev/full")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_says_so_and_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    host = vfp._plugins.get_host()
    filler = FillDiskAt(2)
    host.register_object(filler, "disk-filler")
    run_dir = tmp_path / "run"
    try:
        with pytest.raises(CheckpointWriteError) as caught:
            run(sample_config("training.max_steps=6", "checkpointing.every=1", "logging.every=1"), run_dir)
    finally:
        host.unregister_object(filler)
    message = str(caught.value)
    assert message.startswith("the disk is full (no space left on device) while writing")
    assert f"the previous checkpoint {run_dir / 'checkpoints' / 'step_00000002.pt'} is intact" in message
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "step_00000002.pt"
    assert checkpoint_step(run_dir) == 2
    assert not [p for p in (run_dir / "checkpoints").iterdir() if ".tmp-" in p.name]


# the `latest` pointer -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("pointer") / "run"
    run(sample_config("training.max_steps=4", "checkpointing.every=2", "checkpointing.keep_last=5"), run_dir)
    return run_dir


def copy_run(source: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(source, dest)
    return dest


def test_a_pointer_that_is_not_utf8_is_ignored_with_a_warning(tmp_path: Path, two_checkpoints: Path) -> None:
    run_dir = copy_run(two_checkpoints, tmp_path / "run")
    (run_dir / "checkpoints" / "latest").write_bytes(b"\xff\xfe\x00step")
    with pytest.warns(UserWarning, match="does not name a checkpoint of this folder"):
        path = find_checkpoint(run_dir)
    assert path.name == "step_00000004.pt"


def test_a_pointer_into_another_run_is_never_followed(tmp_path: Path, two_checkpoints: Path) -> None:
    victim = copy_run(two_checkpoints, tmp_path / "victim")
    other = copy_run(two_checkpoints, tmp_path / "other")
    (other / "checkpoints" / "step_00000009.pt").write_bytes((other / "checkpoints" / "step_00000004.pt").read_bytes())
    (victim / "checkpoints" / "latest").write_text("../../other/checkpoints/step_00000009.pt\n")
    with pytest.warns(UserWarning, match="does not name a checkpoint of this folder"):
        _, point = prepare_resume(victim)
    assert point.path == victim / "checkpoints" / "step_00000004.pt"


def test_a_directory_in_place_of_the_pointer_is_found_before_training(tmp_path: Path, two_checkpoints: Path) -> None:
    run_dir = copy_run(two_checkpoints, tmp_path / "run")
    (run_dir / "checkpoints" / "latest").unlink()
    (run_dir / "checkpoints" / "latest").mkdir()
    config, point = prepare_resume(run_dir, ["training.max_steps=8"])
    with pytest.raises(RunDirectoryError, match=r"checkpoints/latest is not a file"):
        run(config, run_dir, resume=point)
    assert checkpoint_step(run_dir) == 4
    assert not (run_dir / "checkpoints" / "step_00000005.pt").exists()


# a hand-edited config.yaml ------------------------------------------------------------------------
def test_resuming_refuses_a_hand_edited_config_with_what_differs(tmp_path: Path, two_checkpoints: Path) -> None:
    run_dir = copy_run(two_checkpoints, tmp_path / "run")
    config_file = run_dir / "config.yaml"
    config_file.write_text(config_file.read_text().replace("lr: 0.05", "lr: 0.2"))
    with pytest.raises(ConfigEditedError, match="was edited after the run wrote it") as caught:
        prepare_resume(run_dir, ["training.max_steps=6"])
    assert "optimizers.default.lr: 0.05 (saved) -> 0.2 (config.yaml)" in str(caught.value)
    config, _ = prepare_resume(run_dir, ["training.max_steps=6", "optimizers.default.lr=0.2"])  # applied: accepted
    assert config.optimizers["default"].lr == 0.2
    config_file.unlink()  # the escape hatch: resume with the saved config
    assert prepare_resume(run_dir, ["training.max_steps=6"])[0].training.max_steps == 6


def test_vfp_train_resume_reports_an_edited_config_and_exits_2(tmp_path: Path, two_checkpoints: Path) -> None:
    run_dir = copy_run(two_checkpoints, tmp_path / "run")
    config_file = run_dir / "config.yaml"
    config_file.write_text(config_file.read_text().replace("max_steps: 4", "max_steps: 40"))
    done = vfp_cli("train", "--resume", str(run_dir))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "training.max_steps: 4 (saved) -> 40 (config.yaml)" in done.stderr


def test_an_unedited_config_written_by_a_resumed_session_is_accepted(tmp_path: Path, two_checkpoints: Path) -> None:
    """A session resumed with overrides rewrites config.yaml; killed before its next checkpoint, the
    file differs from the checkpoint's config, but it was not edited by hand."""
    run_dir = copy_run(two_checkpoints, tmp_path / "run")
    config, _ = prepare_resume(run_dir, ["training.max_steps=9", "logging.every=3"])
    from vfp.engine.run import RunDirectory

    RunDirectory(run_dir).write_config(config.model_dump(mode="json"), None)
    assert prepare_resume(run_dir)[0].training.max_steps == 4


# paths from configs stay inside the run directory -------------------------------------------------
@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("logging.callbacks=[{type: jsonl, filename: ../../../elsewhere/x.jsonl}]", "filename"),
        ("logging.callbacks=[{type: jsonl, filename: /tmp/x.jsonl}]", "filename"),
        ("logging.callbacks=[{type: tensorboard, subdir: /tmp/tb}]", "subdir"),
        ("logging.callbacks=[{type: tensorboard, subdir: logs/../../tb}]", "subdir"),
    ],
)
def test_logger_paths_outside_the_run_directory_are_config_errors(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"logging\.callbacks\.0\.{key}: .*{key} must"):
        load_experiment("sample/regression", [override])


def test_a_logger_path_through_a_link_out_of_the_run_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "logs").symlink_to(outside)
    config = sample_config("training.max_steps=2", "logging.callbacks=[{type: jsonl, filename: logs/m.jsonl}]")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(config, run_dir)
    assert any("outside the run directory" in str(w.message) for w in caught)
    assert not list(outside.iterdir())


def test_vfp_new_experiment_from_a_file_outside_leaves_nothing_behind(tmp_path: Path) -> None:
    done = vfp_cli("new", "experiment", "--from", "../../../../etc/passwd", "newexp", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert not (tmp_path / "newexp").exists()
    assert "Traceback" not in done.stderr
