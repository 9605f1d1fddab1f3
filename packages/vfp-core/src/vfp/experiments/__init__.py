"""Experiments across runs: reading run folders, comparing them, seeds, plots and sweeps.

Reading and comparing (:mod:`vfp.experiments._folder`, :mod:`vfp.experiments.compare`) import neither torch nor numpy;
plotting needs matplotlib (the ``plot`` extra) and sweeps need Optuna (the ``sweep`` extra), both imported
only by the modules that use them.
"""

from vfp.experiments._folder import (
    MetricSeries,
    RunFolder,
    RunReadError,
    better_is_higher,
    expand_runs,
    find_runs,
    is_run_folder,
    read_run,
)
from vfp.experiments.compare import Comparison, SeedGroup, compare_runs, run_value

__all__ = [
    "Comparison",
    "MetricSeries",
    "RunFolder",
    "RunReadError",
    "SeedGroup",
    "better_is_higher",
    "compare_runs",
    "expand_runs",
    "find_runs",
    "is_run_folder",
    "read_run",
    "run_value",
]
