"""``vfp sweep SPEC`` and ``vfp sweep status SPEC_OR_DIR``: hyperparameter sweeps on Optuna's journal storage."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from vfp.cli._common import EXIT_USAGE, config_errors, err, escape, fail, out, print_json

if TYPE_CHECKING:
    from vfp.experiments.sweep_spec import LoadedSpec


def register(app: typer.Typer) -> None:
    """Add ``sweep`` to the ``vfp`` application."""
    app.command("sweep", no_args_is_help=True)(sweep)


def _optuna_or_exit() -> None:
    try:
        import optuna  # noqa: F401
    except ImportError as exc:
        raise fail(f"vfp sweep needs Optuna ({exc}): pip install 'vfp-core[sweep]'") from None


def _load(spec_file: Path) -> LoadedSpec:
    from vfp.experiments.sweep_spec import load_spec

    if not spec_file.is_file():
        raise fail(f"{spec_file}: no such sweep spec", EXIT_USAGE)
    with config_errors():
        return load_spec(spec_file)


def sweep(
    spec_or_action: str = typer.Argument(..., metavar="SPEC | status", help="Sweep spec YAML, or `status`."),
    target: str | None = typer.Argument(None, metavar="[SPEC_OR_DIR]", help="With status: a spec or sweep folder."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Worker processes on this machine."),
    top: int = typer.Option(3, "--top", min=1, help="With status: compare the runs of the best K trials."),
    as_json: bool = typer.Option(False, "--json", help="With status: print JSON."),
) -> None:
    """Run a sweep (`vfp sweep SPEC [--workers N]`) or show one (`vfp sweep status SPEC_OR_DIR`).

    Each trial is a `vfp train` run in the sweep's folder; the Optuna study is the journal file
    `study.journal` there, so a stopped sweep restarts where it was and workers on several machines can
    share one study on a shared filesystem (start `vfp sweep SPEC` on each). See docs/experiments.md.
    """
    if spec_or_action == "status":
        if target is None:
            raise fail("vfp sweep status SPEC_OR_DIR: give the sweep's spec or its folder", EXIT_USAGE)
        _optuna_or_exit()
        status(Path(target), top, as_json)
        return
    if target is not None:
        raise fail(f"unexpected argument {target!r}: `vfp sweep SPEC` or `vfp sweep status SPEC_OR_DIR`", EXIT_USAGE)
    spec_file = Path(spec_or_action)
    loaded = _load(spec_file)
    _optuna_or_exit()
    from vfp.experiments.sweep import SweepWorker, run_workers

    def report(line: str) -> None:
        err().print(line, highlight=False, markup=False)

    if workers > 1:
        raise typer.Exit(run_workers(spec_file, workers, report))
    report(f"sweep {loaded.study_name}: study {loaded.journal}")
    code = SweepWorker(loaded, report).run()
    if code == 0:
        report(f"done; see: vfp sweep status {spec_file}")
    raise typer.Exit(code)


def _spec_of(target: Path) -> LoadedSpec:
    """A spec file, or a sweep folder (its ``sweep.json`` names the spec file)."""
    import json

    if target.is_file():
        return _load(target)
    record = target / "sweep.json"
    if not record.is_file():
        raise fail(f"{target}: neither a sweep spec nor a sweep folder (no sweep.json)", EXIT_USAGE)
    spec_file = Path(json.loads(record.read_text(encoding="utf-8"))["spec"])
    return _load(spec_file)


def status(target: Path, top: int, as_json: bool) -> None:
    """Trials, their values and states, the best so far, and `vfp runs compare` of the best runs."""
    from optuna.trial import TrialState

    from vfp.cli.runs import print_comparison
    from vfp.experiments import compare_runs, read_run
    from vfp.experiments._folder import RunReadError
    from vfp.experiments.sweep import lock_is_free, open_study

    loaded = _spec_of(target)
    try:
        study = open_study(loaded, create=False)
    except KeyError:
        message = f"no study {loaded.study_name!r} in {loaded.journal} yet: run `vfp sweep SPEC` first"
        raise fail(message, EXIT_USAGE) from None
    trials = study.get_trials(deepcopy=False)
    rows = []
    for trial in trials:
        state = trial.state.name.lower()
        if trial.state is TrialState.RUNNING and lock_is_free(trial.user_attrs.get("worker_lock")):
            state = "stale"
        rows.append(
            {
                "number": trial.number,
                "state": state,
                "value": trial.value,
                "params": trial.params,
                "retry_of": trial.system_attrs.get("failed_trial"),
                "surplus": bool(trial.user_attrs.get("surplus")),
                "run_dirs": trial.user_attrs.get("run_dirs", []),
                "last_step": max(trial.intermediate_values, default=None),
            }
        )
    finished = [t for t in trials if t.state is TrialState.COMPLETE]
    best = study.best_trial if finished else None
    ranked = sorted(finished, key=lambda t: t.value if t.value is not None else math.nan, reverse=loaded.spec.maximize)
    top_dirs = [Path(p) for t in ranked[:top] for p in t.user_attrs.get("run_dirs", []) if Path(p).is_dir()]
    if as_json:
        print_json(
            {
                "study": loaded.study_name,
                "journal": str(loaded.journal),
                "direction": study.direction.name.lower(),
                "trials": rows,
                "best": {"number": best.number, "value": best.value, "params": best.params} if best else None,
                "top_runs": [str(p) for p in top_dirs],
            }
        )
        return
    from rich.table import Table

    table = Table(title=f"sweep {loaded.study_name}: {len(trials)} trial(s), {study.direction.name.lower()}")
    for column in ("trial", "state", "value", "params", "run", "step"):
        table.add_column(column, overflow="fold", justify="right" if column in ("trial", "value", "step") else "left")
    for row in rows:
        state = str(row["state"]) + (f" (retry of {row['retry_of']})" if row["retry_of"] is not None else "")
        value = row["value"]
        table.add_row(
            str(row["number"]),
            state + (" surplus" if row["surplus"] else ""),
            f"{value:.6g}" if isinstance(value, float) else "-",
            escape(", ".join(f"{k}={v}" for k, v in dict(row["params"]).items())),
            escape(", ".join(Path(p).name for p in row["run_dirs"])),
            str(row["last_step"] if row["last_step"] is not None else "-"),
        )
    out().print(table)
    if best is not None:
        out().print(f"best: trial {best.number}, value {best.value:.6g}, {best.params}", markup=False)
    if any(r["state"] == "stale" for r in rows):
        out().print("stale trials (their worker is gone) are queued again by the next `vfp sweep SPEC`")
    if top_dirs:
        try:
            runs = [read_run(p) for p in top_dirs]
        except RunReadError as exc:
            raise fail(str(exc), EXIT_USAGE) from None
        title = f"runs of the best {min(top, len(ranked))} trial(s)"
        print_comparison(compare_runs(runs, [loaded.spec.metric], loaded.spec.statistic), title=title)
