"""``vfp plot RUN --chunks``: a trained policy's sampled chunks against the demonstrations' chunks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vfp.experiments.chunks import sample_chunks


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30-step quickstart run (its demonstrations generated under the module's folder)."""
    work = tmp_path_factory.mktemp("chunks")
    subprocess.run(
        [sys.executable, "-m", "vfp", "train", "quickstart", "training.max_steps=30", "evaluation.every=0",
         "data.generate.episodes=20", "threads=1", "--run-dir", "runs/q", "--progress", "none"],
        cwd=work, check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return work


def test_sampled_chunks_have_the_demonstrations_layout_and_follow_the_seed(
    quickstart_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(quickstart_run)
    first = sample_chunks(Path("runs/q"), observations=3, samples=5, steps=2, seed=1)
    again = sample_chunks(Path("runs/q"), observations=3, samples=5, steps=2, seed=1)
    other = sample_chunks(Path("runs/q"), observations=3, samples=5, steps=2, seed=2)
    assert first.samples.shape == (3, 5, 16, 2)
    assert first.demos.shape[1:] == (16, 2)
    assert first.demos.shape[0] > 3  # the grey background holds more windows than the sampled ones
    np.testing.assert_array_equal(first.samples, again.samples)
    assert not np.array_equal(first.samples, other.samples)
    # demonstrations come back in dataset units: the avoid_obstacle targets lie in [-1, 1]
    assert float(np.abs(first.demos).max()) <= 1.05


def test_the_command_writes_the_figure_and_refuses_several_runs(quickstart_run: Path) -> None:
    run = [sys.executable, "-m", "vfp", "plot", "runs/q", "--chunks", "-o", "out/chunks.png", "--samples", "4"]
    done = subprocess.run(run, cwd=quickstart_run, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert (quickstart_run / "out" / "chunks.png").stat().st_size > 10_000
    (quickstart_run / "runs" / "q2").symlink_to(quickstart_run / "runs" / "q")
    two = [sys.executable, "-m", "vfp", "plot", "runs/q", "runs/q2", "--chunks"]
    refused = subprocess.run(two, cwd=quickstart_run, capture_output=True, text=True, timeout=300, check=False)
    assert refused.returncode == 2
    assert "--chunks draws one run" in refused.stderr
