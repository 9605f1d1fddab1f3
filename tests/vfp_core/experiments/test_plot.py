"""`vfp plot`'s figure: a panel per metric, seed groups as their mean with a ± std band."""

from __future__ import annotations

from pathlib import Path

import pytest
from experiments_helpers import write_run

from vfp.experiments import read_run

pytest.importorskip("matplotlib")


def test_seed_groups_are_drawn_as_mean_with_a_band(tmp_path: Path) -> None:
    from matplotlib.collections import PolyCollection

    from vfp.experiments.plot import build_figure

    runs = [
        read_run(write_run(tmp_path / "fast-s0", seed=0, val_losses=(0.4, 0.2))),
        read_run(write_run(tmp_path / "fast-s1", seed=1, val_losses=(0.6, 0.4))),
        read_run(write_run(tmp_path / "slow-s0", seed=0, lr=0.001, val_losses=(0.9, 0.8))),
    ]
    figure = build_figure(runs, ["val/loss", "val/success_rate"])
    loss, success = figure.axes[:2]
    assert (loss.get_title(), success.get_title()) == ("val/loss", "val/success_rate")
    lines = {line.get_label(): line for line in loss.get_lines()}
    assert set(lines) == {"lr=0.05 (n=2)", "lr=0.001"}
    assert list(lines["lr=0.05 (n=2)"].get_xdata()) == [10, 20]
    assert list(lines["lr=0.05 (n=2)"].get_ydata()) == pytest.approx([0.5, 0.3])  # the mean over seeds
    bands = [c for c in loss.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1  # the seed group's band; a single run has none
    low, high = bands[0].get_paths()[0].vertices[:, 1].min(), bands[0].get_paths()[0].vertices[:, 1].max()
    assert (low, high) == pytest.approx((0.3 - 0.1414, 0.5 + 0.1414), abs=1e-3)  # mean ± sample std
    assert loss.get_yscale() == "log"  # a loss
    assert success.get_yscale() == "linear"


def test_default_metrics_are_the_losses_and_the_evaluation_metrics_present(tmp_path: Path) -> None:
    from vfp.experiments.plot import default_metrics

    run = read_run(write_run(tmp_path / "r"))
    assert default_metrics([run]) == ["train/loss", "val/loss", "val/success_rate"]
