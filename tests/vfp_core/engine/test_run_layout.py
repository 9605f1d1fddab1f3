"""The run-directory layout and torchrun detection: torch-free modules shared by the CLI and the engine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from vfp.launch import ProcessPlacement, under_torchrun
from vfp.run_layout import RunLayout, checkpoint_path, holds_a_run, list_step_checkpoints, run_dir_of


def test_the_layout_modules_import_no_torch() -> None:
    code = "import sys, vfp.run_layout, vfp.launch, vfp.cli.train; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_run_dir_of_a_run_its_checkpoints_folder_and_a_checkpoint_file(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path / "run")
    layout.checkpoints.mkdir(parents=True)
    file = checkpoint_path(layout.checkpoints, 12)
    file.write_bytes(b"")
    assert file.name == "step_00000012.pt"
    assert run_dir_of(layout.path) == run_dir_of(layout.checkpoints) == run_dir_of(file) == layout.path


def test_holds_a_run_once_there_is_a_checkpoint_or_pointer(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path / "run")
    layout.checkpoints.mkdir(parents=True)
    assert not holds_a_run(layout.path)
    (layout.checkpoints / "step_00000003.pt").write_bytes(b"")
    (layout.checkpoints / "notes.txt").write_text("")
    assert holds_a_run(layout.path)
    assert [step for step, _ in list_step_checkpoints(layout.checkpoints)] == [3]


def test_process_placement_from_torchrun_variables() -> None:
    assert ProcessPlacement.from_environment({}) == ProcessPlacement(0, 0, 1)
    placed = ProcessPlacement.from_environment({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"})
    assert (placed.rank, placed.local_rank, placed.world_size, placed.is_main, placed.enabled) == (2, 0, 4, False, True)
    assert not under_torchrun({})
    assert under_torchrun({"TORCHELASTIC_RUN_ID": "x", "WORLD_SIZE": "1"})
    assert under_torchrun({"WORLD_SIZE": "2"})
