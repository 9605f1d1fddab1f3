"""Misbehaving plugin packages, installed for real (a dist-info with a ``vfp`` entry point and a module,
on PYTHONPATH), against the ``vfp`` command: each is named and isolated, everything else keeps working,
and no command prints a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest

HEADER = "import vfp\nfrom vfp import ComponentKind, ComponentSpec\nVFP_CONTRACT = '1.1'\n"

PLUGINS = {
    # sys.exit() while the module is imported
    "exits": "import sys\nsys.exit(3)\n",
    # sys.exit() inside a discovery hook
    "exits_in_hook": HEADER + "@vfp.hookimpl\ndef vfp_register_components():\n    raise SystemExit(4)\n",
    # a slow import (the threshold is lowered to 0.2 s in these tests)
    "slow": "import time\ntime.sleep(0.6)\n" + HEADER,
    # a config model with an annotation that cannot be resolved
    "unresolved": HEADER
    + dedent(
        """
        class UnresolvedConfig(vfp.TrainerConfig):
            helper: "NotDefinedAnywhere" = None

        @vfp.hookimpl
        def vfp_register_components():
            return [ComponentSpec(ComponentKind.TRAINER, "unresolved", UnresolvedConfig, "x:y")]
        """
    ),
    # a config model with a field pydantic cannot validate
    "locked": HEADER
    + dedent(
        """
        import threading

        class LockedConfig(vfp.ComponentConfig):
            lock: threading.Lock = None

        @vfp.hookimpl
        def vfp_register_components():
            return [ComponentSpec(ComponentKind.DATALOADER, "locked", LockedConfig, "x:y")]
        """
    ),
    # a config model whose validator raises something else than ValueError, and bad callbacks
    "misbehaving": HEADER
    + dedent(
        """
        from pydantic import model_validator

        class RaisingLossConfig(vfp.LossConfig):
            @model_validator(mode="after")
            def _check(self):
                raise RuntimeError("validator exploded")

        class CallbackConfig(vfp.CallbackConfig):
            pass

        class ConstructorRaises:
            def __init__(self, config):
                raise OSError("cannot reach the tracking server")

        class ExitsOnStep:
            def __init__(self, config):
                pass

            @vfp.hookimpl
            def vfp_on_step_end(self, run, step, metrics):
                raise SystemExit(0)

        class InterruptsOnCheckpoint:
            def __init__(self, config):
                pass

            @vfp.hookimpl
            def vfp_on_checkpoint_saved(self, run, step, path):
                raise KeyboardInterrupt

        @vfp.hookimpl
        def vfp_register_components():
            me = "vfp_misbehaving"
            return [
                ComponentSpec(ComponentKind.LOSS, "raising_loss", RaisingLossConfig, "x:y"),
                ComponentSpec(ComponentKind.CALLBACK, "ctor_raises", CallbackConfig, f"{me}:ConstructorRaises"),
                ComponentSpec(ComponentKind.CALLBACK, "exits_on_step", CallbackConfig, f"{me}:ExitsOnStep"),
                ComponentSpec(
                    ComponentKind.CALLBACK, "interrupts_on_checkpoint", CallbackConfig, f"{me}:InterruptsOnCheckpoint"
                ),
            ]
        """
    ),
}


def install(folder: Path, name: str, source: str) -> None:
    """One installed-looking distribution ``vfp-NAME``: module ``vfp_NAME`` and its dist-info."""
    module = f"vfp_{name}"
    (folder / f"{module}.py").write_text(source, encoding="utf-8")
    info = folder / f"{module}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vfp-{name.replace('_', '-')}\nVersion: 0.1.0\n\n")
    (info / "entry_points.txt").write_text(f"[vfp]\n{name} = {module}\n")


def environment(folder: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in [str(folder), os.environ.get("PYTHONPATH", "")] if p)
    return {**os.environ, "PYTHONPATH": path, "VFP_PLUGIN_IMPORT_THRESHOLD": "0.2", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    for name, source in PLUGINS.items():
        install(folder, name, source)
    return folder


def vfp_cli(folder: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vfp", *args],
        capture_output=True,
        text=True,
        env=environment(folder),
        cwd=cwd,
        timeout=300,
        check=False,
    )


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr + done.stdout, done.stderr


def test_each_broken_plugin_is_named_and_marked_failed_and_the_others_work(site: Path) -> None:
    done = vfp_cli(site, "plugins", "list", "--json")
    assert done.returncode == 0, done.stderr
    records = {r["name"]: r for r in json.loads(done.stdout)["plugins"]}
    assert records["exits"]["status"] == "failed"
    assert "called sys.exit(3) while importing vfp_exits" in records["exits"]["reason"]
    assert records["exits_in_hook"]["status"] == "failed"
    assert "sys.exit(4) in hook vfp_register_components" in records["exits_in_hook"]["reason"]
    assert records["unresolved"]["status"] == "failed"
    assert "trainer 'unresolved'" in records["unresolved"]["reason"]
    assert records["locked"]["status"] == "failed"
    assert "dataloader 'locked'" in records["locked"]["reason"]
    assert records["slow"]["status"] == "ok"
    assert any("s to import its entry point vfp_slow" in p for p in records["slow"]["problems"])
    assert records["misbehaving"]["status"] == "ok"
    assert records["sample"]["status"] == "ok"
    no_traceback(done)


def test_the_slow_import_is_warned_about(site: Path) -> None:
    done = vfp_cli(site, "plugins", "list")
    assert done.returncode == 0, done.stderr
    assert "plugin 'slow' (vfp-slow 0.1.0) takes" in " ".join(done.stderr.split())


@pytest.mark.parametrize("command", [("config", "validate", "sample/regression"), ("config", "schema")])
def test_config_commands_work_for_everything_else(site: Path, command: tuple[str, ...]) -> None:
    done = vfp_cli(site, *command)
    assert done.returncode == 0, done.stderr
    no_traceback(done)
    if command[1] == "schema":
        assert '"unresolved"' not in done.stdout
        assert '"locked"' not in done.stdout
        assert '"sample_regression"' in done.stdout


def test_a_validator_raising_runtime_error_is_a_config_error_naming_the_component(site: Path) -> None:
    done = vfp_cli(site, "config", "validate", "sample/regression", "losses.fit={type: raising_loss}")
    assert done.returncode == 2, done.stderr
    no_traceback(done)
    text = " ".join(done.stderr.split())
    assert "losses.fit: the config model of loss 'raising_loss' (from" in text
    assert "vfp-misbehaving" in text
    assert "RuntimeError: validator exploded" in text


def train(site: Path, tmp_path: Path, *overrides: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    run_dir = tmp_path / "run"
    done = vfp_cli(
        site, "train", "sample/regression", *overrides, "--run-dir", str(run_dir), "--progress", "none",
    )  # fmt: skip
    return done, run_dir


def test_a_logger_whose_constructor_raises_is_a_clean_error(site: Path, tmp_path: Path) -> None:
    done, _ = train(site, tmp_path, "--max-steps", "2", "logging.callbacks=[{type: jsonl}, {type: ctor_raises}]")
    assert done.returncode == 1, done.stderr
    no_traceback(done)
    text = " ".join(done.stderr.split())
    assert "logging.callbacks.1: callback 'ctor_raises' from" in text
    assert "OSError: cannot reach the tracking server" in text


def test_sys_exit_in_a_step_hook_disables_that_callback_and_training_goes_on(site: Path, tmp_path: Path) -> None:
    done, run_dir = train(
        site,
        tmp_path,
        "--max-steps",
        "4",
        "logging.every=1",
        "logging.callbacks=[{type: jsonl}, {type: exits_on_step}]",
    )
    assert done.returncode == 0, done.stderr
    no_traceback(done)
    assert "called sys.exit(0) in vfp_on_step_end" in " ".join(done.stderr.split())
    assert (run_dir / "checkpoints" / "step_00000004.pt").is_file()
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) >= 4  # the other logger kept working


def test_keyboard_interrupt_from_a_checkpoint_hook_reports_the_checkpoint_written(site: Path, tmp_path: Path) -> None:
    done, run_dir = train(
        site,
        tmp_path,
        "--max-steps",
        "6",
        "checkpointing.every=2",
        "logging.callbacks=[{type: interrupts_on_checkpoint}]",
    )
    assert done.returncode == 130, done.stderr
    no_traceback(done)
    checkpoint = run_dir / "checkpoints" / "step_00000002.pt"
    assert checkpoint.is_file()
    text = " ".join(done.stderr.split())
    assert f"the newest checkpoint is {checkpoint} (step 2)" in text
    assert "no checkpoint was written" not in text


def test_keyboard_interrupt_at_import_stops_with_one_line_and_exit_130(tmp_path: Path) -> None:
    install(tmp_path, "interrupts", "raise KeyboardInterrupt\n")
    done = vfp_cli(tmp_path, "plugins", "list")
    assert done.returncode == 130
    no_traceback(done)
    assert "interrupted while importing plugin 'interrupts' (vfp-interrupts 0.1.0)" in " ".join(done.stderr.split())
