"""Training curves of one or more runs from their ``metrics.jsonl`` (matplotlib, the ``plot`` extra).

One panel per metric (training and validation loss, and the evaluation metrics the runs have), every run
overlaid; runs that differ only by seed are drawn as one line, the mean over seeds, with a band of ± one
standard deviation (and the seeds' count in the legend). Losses and errors are drawn on a log scale when
all their values are positive. matplotlib is used without pyplot, so no display is needed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vfp.experiments._folder import RunFolder
from vfp.experiments.compare import SeedGroup, compare_runs

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["build_figure", "default_metrics", "plot_runs"]

PREFERRED = (
    "train/loss",
    "val/loss",
    "val/success_rate",
    "val/mode_entropy",
    "val/action_mse",
    "val/off_manifold_rate",
)
LOG_SCALE_HINTS = ("loss", "mse", "mae", "error")
MAX_DEFAULT_PANELS = 6
MAX_LABEL = 48


def default_metrics(runs: Sequence[RunFolder]) -> list[str]:
    """The preferred metrics that some run has (training and validation loss first)."""
    present: dict[str, None] = {}
    for run in runs:
        present.update(dict.fromkeys(run.metric_names()))
    chosen = [m for m in PREFERRED if m in present]
    return chosen[:MAX_DEFAULT_PANELS] or list(present)[:2]


def _group_label(group: SeedGroup) -> str:
    """``lr=0.05 (n=3)`` when the differing keys say it briefly, else the (first) run's folder name."""
    runs = len(group.runs)
    brief = ", ".join(f"{key.rsplit('.', 1)[-1]}={_short(value)}" for key, value in group.key)
    if not brief or len(brief) > MAX_LABEL:
        brief = group.runs[0].name if runs == 1 else f"{group.runs[0].name} and {runs - 1} more run(s)"
    return f"{brief} (n={runs})" if runs > 1 else brief


def _short(value: str) -> str:
    """A float shown with 4 significant digits in a legend (0.012520653814999465 → 0.01252)."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if "." not in value and "e" not in value.lower() else f"{number:.4g}"


def _mean_curve(group: SeedGroup, metric: str) -> tuple[list[int], list[float], list[float]]:
    """Steps, mean and std over the group's runs at each step (std 0 where one run has the step)."""
    by_step: dict[int, list[float]] = {}
    for run in group.runs:
        series = run.series(metric)
        for step, value in zip(series.steps, series.values, strict=True):
            if math.isfinite(value):
                by_step.setdefault(step, []).append(value)
    steps = sorted(by_step)
    means = [statistics.fmean(by_step[s]) for s in steps]
    stds = [statistics.stdev(by_step[s]) if len(by_step[s]) > 1 else 0.0 for s in steps]
    return steps, means, stds


def plot_runs(runs: Sequence[RunFolder], output: Path, metrics: Sequence[str] = (), *, dpi: int = 120) -> Path:
    """Write a PNG (or any format matplotlib knows by the suffix) of the runs' curves; returns its path."""
    figure = build_figure(runs, metrics)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=dpi)
    return output


def build_figure(runs: Sequence[RunFolder], metrics: Sequence[str] = ()) -> Figure:
    """The figure :func:`plot_runs` writes: one axes per metric, titled with the metric's name."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    plain = FuncFormatter(lambda value, _: f"{value:.3g}")

    chosen = list(metrics) or default_metrics(runs)
    if not chosen:
        raise ValueError("the runs have no metrics to plot (their metrics.jsonl files are empty)")
    comparison = compare_runs(runs, chosen)
    columns = min(len(chosen), 2 if len(chosen) <= 4 else 3)
    rows = math.ceil(len(chosen) / columns)
    figure = Figure(figsize=(5.2 * columns, 3.6 * rows), layout="constrained")
    axes: list[Any] = [figure.add_subplot(rows, columns, i + 1) for i in range(len(chosen))]
    colors = [f"C{i % 10}" for i in range(len(comparison.groups))]
    for ax, metric in zip(axes, chosen, strict=True):
        plotted: list[float] = []
        for color, group in zip(colors, comparison.groups, strict=True):
            steps, means, stds = _mean_curve(group, metric)
            if not steps:
                continue
            marker = "o" if len(steps) <= 12 else None
            label = _group_label(group)
            ax.plot(steps, means, color=color, label=label, marker=marker, markersize=3, linewidth=1.4)
            if len(group.runs) > 1:
                low = [m - s for m, s in zip(means, stds, strict=True)]
                high = [m + s for m, s in zip(means, stds, strict=True)]
                ax.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
                plotted.extend(low)
            plotted.extend(means)
        ax.set_title(metric)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if not plotted:
            ax.text(0.5, 0.5, "no values", transform=ax.transAxes, ha="center", va="center", color="gray")
        elif any(h in metric for h in LOG_SCALE_HINTS) and min(plotted) > 0:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(plain)
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:
        more_handles, more_labels = ax.get_legend_handles_labels()
        for handle, label in zip(more_handles, more_labels, strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        figure.legend(
            handles,
            labels,
            loc="outside lower center",
            ncols=min(len(labels), 3 if max(map(len, labels)) < 40 else 2),
            fontsize="small",
        )
    title = runs[0].experiment if len({r.experiment for r in runs}) == 1 else "runs"
    figure.suptitle(f"{title}: {len(runs)} run(s)")
    return figure
