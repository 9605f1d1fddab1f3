"""Comparing runs: the config keys that differ, runs that differ only by seed grouped with mean ± std.

A *seed group* is a set of runs whose resolved configs are equal except for the seed (``seed``): the
runs `vfp train CONFIG --seeds 0,1,2` makes, or a sweep trial's seeds. Metrics of a group are the mean,
the sample standard deviation and n of each run's value (the last evaluation by default, like the
numbers a paper's table reports; ``best`` and ``mean of the last k evaluations`` as in diffusion_policy's
multirun_metrics).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from vfp.experiments._folder import RunFolder, better_is_higher, flatten

__all__ = ["Comparison", "SeedGroup", "compare_runs", "run_value"]

SEED_KEYS = ("seed",)
IGNORED_KEYS = ("name", "description")
"""Keys that never make two runs different experiments (the name is cosmetic)."""

Statistic = Literal["last", "best", "last3"]


def run_value(run: RunFolder, metric: str, statistic: Statistic = "last") -> float:
    """A run's value of ``metric``: its last evaluation, its best, or the mean of its last three."""
    series = run.series(metric)
    if statistic == "best":
        return series.best()
    if statistic == "last3":
        return series.mean_of_last(3)
    return series.last


@dataclass
class SeedGroup:
    """Runs whose configs differ only by seed."""

    key: tuple[tuple[str, str], ...]
    """The differing config values that define the group, as (key, repr) pairs."""
    runs: list[RunFolder] = field(default_factory=list)

    @property
    def seeds(self) -> list[int | None]:
        return [run.seed for run in self.runs]

    def stats(self, metric: str, statistic: Statistic = "last") -> tuple[float, float, int]:
        """(mean, standard deviation, n) over the runs that have the metric; std is nan for n < 2."""
        values = [v for v in (run_value(r, metric, statistic) for r in self.runs) if math.isfinite(v)]
        if not values:
            return math.nan, math.nan, 0
        std = statistics.stdev(values) if len(values) > 1 else math.nan
        return statistics.fmean(values), std, len(values)


@dataclass
class Comparison:
    """The result of :func:`compare_runs`."""

    runs: list[RunFolder]
    differing: dict[str, list[Any]]
    """Config keys (dotted) whose values differ between runs, seed keys left out, with each run's value."""
    seed_values: list[Any]
    groups: list[SeedGroup]
    metrics: list[str]
    statistic: Statistic

    def to_json(self) -> dict[str, Any]:
        def number(value: float) -> float | None:
            return value if math.isfinite(value) else None

        return {
            "statistic": self.statistic,
            "metrics": self.metrics,
            "differing_keys": list(self.differing),
            "runs": [
                {
                    "path": str(run.path),
                    "name": run.name,
                    "status": run.status,
                    "seed": run.seed,
                    "config": {key: values[i] for key, values in self.differing.items()},
                    "metrics": {m: number(run_value(run, m, self.statistic)) for m in self.metrics},
                }
                for i, run in enumerate(self.runs)
            ],
            "groups": [
                {
                    "config": dict(group.key),
                    "runs": [str(run.path) for run in group.runs],
                    "seeds": group.seeds,
                    "metrics": {
                        m: dict(zip(("mean", "std", "n"), _json_stats(group.stats(m, self.statistic)), strict=True))
                        for m in self.metrics
                    },
                }
                for group in self.groups
            ],
        }


def _json_stats(stats: tuple[float, float, int]) -> tuple[float | None, float | None, int]:
    mean, std, n = stats
    return (mean if math.isfinite(mean) else None, std if math.isfinite(std) else None, n)


def _display(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def differing_keys(configs: Sequence[Mapping[str, Any]], ignore: Sequence[str] = ()) -> dict[str, list[Any]]:
    """Dotted keys whose value is not the same in every config (a key missing from one counts as differing)."""
    flats = [flatten(config) for config in configs]
    keys: dict[str, None] = {}
    for flat in flats:
        keys.update(dict.fromkeys(flat))
    missing = object()
    differing: dict[str, list[Any]] = {}
    for key in keys:
        if key in ignore:
            continue
        values = [flat.get(key, missing) for flat in flats]
        if any(v != values[0] for v in values[1:]):
            differing[key] = [None if v is missing else v for v in values]
    return differing


def compare_runs(runs: Sequence[RunFolder], metrics: Sequence[str] = (), statistic: Statistic = "last") -> Comparison:
    """Differing config keys, seed groups and the metrics to show (the first run's main metric by default)."""
    differing = differing_keys([r.config for r in runs], ignore=(*SEED_KEYS, *IGNORED_KEYS))
    chosen = list(metrics)
    if not chosen and runs:
        chosen = [runs[0].main_metric()]
    groups: dict[tuple[tuple[str, str], ...], SeedGroup] = {}
    for index, run in enumerate(runs):
        key = tuple((name, _display(values[index])) for name, values in differing.items())
        groups.setdefault(key, SeedGroup(key)).runs.append(run)
    return Comparison(
        runs=list(runs),
        differing=differing,
        seed_values=[run.seed for run in runs],
        groups=list(groups.values()),
        metrics=chosen,
        statistic=statistic,
    )


def best_group(comparison: Comparison, metric: str) -> SeedGroup | None:
    """The group with the best mean of ``metric`` (larger or smaller by the metric's name)."""
    scored = [(g.stats(metric, comparison.statistic)[0], g) for g in comparison.groups]
    scored = [(value, g) for value, g in scored if math.isfinite(value)]
    if not scored:
        return None
    pick = max if better_is_higher(metric) else min
    return pick(scored, key=lambda pair: pair[0])[1]
