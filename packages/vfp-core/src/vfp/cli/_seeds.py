"""``vfp train CONFIG --seeds 0,1,2 [--parallel N]``: the command-line side of :mod:`vfp.experiments.seeds`."""

from __future__ import annotations

import os
from pathlib import Path

from vfp._plugins import get_host
from vfp.cli._common import EXIT_USAGE, config_errors, err, fail


def train_seeds(
    config: str | None,
    overrides: list[str],
    seeds_text: str | None,
    seed: int | None,
    resume: Path | None,
    run_dir: Path | None,
    parallel: int,
    nproc: int | None,
    progress: str,
) -> int:
    """Validate once, then train one ``vfp train`` process per seed; returns the exit code."""
    from vfp.config import load_experiment
    from vfp.experiments.seeds import SeedRun, parse_seeds, run_seeds, seed_run_dir
    from vfp.run_layout import default_run_dir, holds_a_run

    if seeds_text is None:
        raise fail("--parallel is for --seeds: give the seeds to train, e.g. --seeds 0,1,2", EXIT_USAGE)
    if resume is not None:
        raise fail(
            "--seeds starts new runs; resume each seed's run on its own: vfp train --resume RUN_DIR-seedS", EXIT_USAGE
        )
    if seed is not None:
        raise fail("give either --seed or --seeds, not both", EXIT_USAGE)
    try:
        seeds = parse_seeds(seeds_text)
    except ValueError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    assert config is not None  # checked by `vfp train` before
    with config_errors():
        loaded = load_experiment(config, overrides)
    base = run_dir if run_dir is not None else default_run_dir(loaded.config.name or loaded.source.stem)
    runs = [SeedRun(s, seed_run_dir(base, s)) for s in seeds]
    taken = [run.run_dir for run in runs if holds_a_run(run.run_dir)]
    if taken:
        raise fail(f"{taken[0]} already holds a run (it has checkpoints); choose another --run-dir", EXIT_USAGE)
    args = [config, *overrides, "--progress", progress if parallel <= 1 or progress != "auto" else "plain"]
    if nproc is not None:
        args += ["--nproc", str(nproc)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    disabled = ",".join(sorted(get_host().disabled))
    if disabled:
        env["VFP_DISABLE_PLUGINS"] = disabled
    listed = ", ".join(map(str, seeds))
    err().print(f"training seeds {listed} ({parallel} at a time) into {base}-seedS", highlight=False, markup=False)
    code = run_seeds(
        args, runs, parallel, report=lambda line: err().print(line, highlight=False, markup=False), env=env
    )
    pattern = str(base.with_name(f"{base.name}-seed*"))
    err().print(f"compare them with: vfp runs compare '{pattern}'", highlight=False, markup=False)
    return code
