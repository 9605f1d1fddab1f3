"""Sweeps on Optuna's journal file storage: workers that share one study, survive being killed, and prune.

Layout of a sweep's output folder (``runs/sweep-NAME`` by default)::

    study.journal          the Optuna study (JournalFileStorage: an append-only log with a file lock)
    trial-0003/            the run of trial 3 (trial-0003-seed1 ... with several seeds)
    trial-0003/train.log   the trial's `vfp train` output
    workers/HOST-PID.lock  held (flock) by a live worker and by its training process
    claims/                one file per trial taken over from a dead worker (O_EXCL: exactly one taker)

Each trial is ``vfp train EXPERIMENT OVERRIDES KEY=VALUE... --seed S --run-dir trial-N`` in a child
process. While it trains, the worker reads the evaluations the jsonl logger writes to the run's
metrics.jsonl (through the lifecycle hook ``vfp_on_evaluation_end``), reports them to the trial, and
asks Optuna's pruner: a pruned run is stopped with SIGTERM (the engine checkpoints and exits 143).

A killed worker's trial stays RUNNING in the journal. The training process dies with its worker
(``PR_SET_PDEATHSIG``: it checkpoints on SIGTERM) and holds the worker's lock until it has. Any worker
that finds a RUNNING trial whose lock is free claims it (one claim file per trial, created with
O_EXCL), marks it FAIL, and queues a retry with the same parameters (Optuna's
``RetryHeartbeatStaleTrialCallback``); the retry resumes the killed run from its checkpoint in the same
folder. So no trial is lost and none is run twice. Workers wait until every trial has finished.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from vfp.experiments._folder import RunReadError, read_run
from vfp.experiments.compare import run_value
from vfp.experiments.sweep_spec import Choice, IntRange, LoadedSpec, Uniform

if TYPE_CHECKING:
    import optuna

__all__ = ["SweepWorker", "open_study", "trial_run_dirs"]

POLL_S = 0.5


class TrialFailed(Exception):
    """A trial whose training failed (Optuna records it as FAIL and the sweep goes on)."""


RETRY_LIMIT = 3


def _storage(spec: LoadedSpec) -> Any:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    spec.output.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(spec.journal)))


def _sampler(spec: LoadedSpec) -> Any:
    import optuna

    s = spec.spec
    if s.sampler == "grid":  # the grid sampler never hands out a point that is done or running
        grid = {
            key: list(range(len(p.values))) if _unhashable(p) else list(p.values)
            for key, p in s.space.items()
            if isinstance(p, Choice)
        }
        return optuna.samplers.GridSampler(grid, seed=s.sampler_seed)
    # each worker process draws its own stream (the same seed in two workers would suggest the same values)
    seed = None if s.sampler_seed is None else (s.sampler_seed * 1_000_003 + os.getpid()) % 2**32
    if s.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(spec: LoadedSpec) -> Any:
    import optuna

    if spec.spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec.spec.pruner_startup_trials)
    if spec.spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def open_study(spec: LoadedSpec, *, create: bool = True) -> optuna.Study:
    """The sweep's study (created on first use; every worker and `vfp sweep status` opens the same)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _storage(spec)
    if not create:
        return optuna.load_study(study_name=spec.study_name, storage=storage)
    return optuna.create_study(
        study_name=spec.study_name,
        storage=storage,
        sampler=_sampler(spec),
        pruner=_pruner(spec),
        direction="maximize" if spec.spec.maximize else "minimize",
        load_if_exists=True,
    )


def original_number(trial: optuna.trial.FrozenTrial) -> int:
    """The number of the trial a retry continues (its own number when it is not a retry)."""
    failed = trial.system_attrs.get("failed_trial")
    return int(failed) if isinstance(failed, int) else trial.number


def trial_run_dirs(spec: LoadedSpec, number: int) -> list[Path]:
    """Run folders of a trial: ``trial-0003``, or ``trial-0003-seedS`` per seed when there are several."""
    seeds = spec.spec.seeds
    base = spec.output / f"trial-{number:04d}"
    return [base] if len(seeds) == 1 else [base.with_name(f"{base.name}-seed{s}") for s in seeds]


def _suggest(trial: optuna.Trial, key: str, param: Choice | Uniform | IntRange) -> Any:
    if isinstance(param, Choice):
        index = trial.suggest_categorical(key, list(range(len(param.values)))) if _unhashable(param) else None
        if index is not None:
            return param.values[int(index)]
        return trial.suggest_categorical(key, param.values)
    if isinstance(param, Uniform):
        return trial.suggest_float(key, param.low, param.high, log=param.type == "log_uniform")
    return trial.suggest_int(key, param.low, param.high, step=param.step, log=param.log)


def _unhashable(param: Choice) -> bool:
    """Optuna's categorical values must be None, bool, int, float or str: lists are chosen by index."""
    return any(not isinstance(v, None | bool | int | float | str) for v in param.values)


def _override(key: str, value: Any) -> str:
    return f"{key}={json.dumps(value) if not isinstance(value, str) else value}"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM this process when the worker that started it dies (it then checkpoints and stops)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class WorkerLock:
    """A file this worker holds an exclusive flock on; its training processes inherit the descriptor."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{socket.gethostname()}-{os.getpid()}.lock"
        self.handle: IO[str] = self.path.open("w")
        fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.handle.write(f"{socket.gethostname()} {os.getpid()}\n")
        self.handle.flush()

    @property
    def fd(self) -> int:
        return self.handle.fileno()

    def close(self) -> None:
        self.handle.close()


def lock_is_free(path: str | None) -> bool:
    """Whether the worker (and training process) holding ``path`` are gone."""
    if not path or not Path(path).exists():
        return True
    with open(path) as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return True


class SweepWorker:
    """One worker process of a sweep: asks for trials, trains them, tells the results, until the end."""

    def __init__(self, spec: LoadedSpec, report: Callable[[str], None] = print, python: str = sys.executable) -> None:
        self.spec = spec
        self.report = report
        self.python = python
        self.study = open_study(spec)
        record = {"spec": str(spec.file.resolve()), "study": spec.study_name}
        (spec.output / "sweep.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        self.lock = WorkerLock(spec.output / "workers")
        self.child: subprocess.Popen[bytes] | None = None

    # bookkeeping ---------------------------------------------------------------------------------
    def _trials(self) -> list[optuna.trial.FrozenTrial]:
        return self.study.get_trials(deepcopy=False)

    def _budget_used(self, trials: Sequence[optuna.trial.FrozenTrial]) -> int:
        """Trials that count against ``trials``: every trial that is not a retry or a surplus one."""
        from optuna.trial import TrialState

        return sum(
            1
            for t in trials
            if "failed_trial" not in t.system_attrs
            and not t.user_attrs.get("surplus")
            and t.state is not TrialState.WAITING
        )

    def recover_stale(self) -> int:
        """Take over RUNNING trials whose worker is gone: FAIL them and queue retries. Returns how many."""
        import optuna
        from optuna.trial import TrialState

        taken = 0
        claims = self.spec.output / "claims"
        claims.mkdir(exist_ok=True)
        for trial in self._trials():
            if trial.state is not TrialState.RUNNING or not lock_is_free(trial.user_attrs.get("worker_lock")):
                continue
            started = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
            if trial.user_attrs.get("worker_lock") is None and time.time() - started < 60:
                continue  # just asked for by a worker that has not recorded its lock yet
            try:
                os.close(os.open(claims / f"trial-{trial.number:04d}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue  # another worker took it over
            try:
                self.study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            except RuntimeError as exc:  # the grid sampler calls study.stop(), meant for optimize(); the state is saved
                if "Study.stop" not in str(exc):
                    raise
            self.study.set_user_attr(f"stale_trial_{trial.number}", self.lock.path.name)
            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=RETRY_LIMIT)(self.study, trial)
            self.report(f"trial {trial.number}: its worker is gone; queued again (it resumes from its checkpoint)")
            taken += 1
        return taken

    # the loop ----------------------------------------------------------------------------------
    def run(self) -> int:
        """Work until the study has its trials and none is running. Returns an exit code (130 if stopped)."""
        from optuna.trial import TrialState

        try:
            while True:
                self.recover_stale()
                trials = self._trials()
                waiting = any(t.state is TrialState.WAITING for t in trials)
                if not waiting and self._budget_used(trials) >= self.spec.spec.trials:
                    if any(t.state is TrialState.RUNNING for t in trials):
                        time.sleep(POLL_S * 2)  # another worker's trial may still need a retry
                        continue
                    return 0
                # one trial per call: Optuna's samplers (the grid's stop) expect to run inside optimize()
                self.study.optimize(self._objective, n_trials=1, catch=(TrialFailed,))
        except KeyboardInterrupt:
            return 130
        finally:
            self.lock.close()

    def _objective(self, trial: optuna.Trial) -> float:
        import optuna

        trial.set_user_attr("worker_lock", str(self.lock.path))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        frozen = next(t for t in self._trials() if t.number == trial.number)
        is_retry = "failed_trial" in frozen.system_attrs
        if not is_retry:
            earlier = [t for t in self._trials() if t.number < trial.number]
            if self._budget_used(earlier) >= self.spec.spec.trials:
                trial.set_user_attr("surplus", True)  # another worker took the last trial at the same moment
                raise TrialFailed("surplus trial: the study has all its trials")
        values = {key: _suggest(trial, key, param) for key, param in self.spec.spec.space.items()}
        number = original_number(frozen)
        run_dirs = trial_run_dirs(self.spec, number)
        trial.set_user_attr("run_dirs", [str(p) for p in run_dirs])
        overrides = [_override(k, v) for k, v in values.items()]
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        self.report(f"trial {trial.number}{f' (retry of {number})' if is_retry else ''}: {shown}")
        try:
            outcome = self._train_trial(trial, overrides, run_dirs)
        except KeyboardInterrupt:  # stopped by the user: queue it again, to be resumed by the next worker
            frozen = next(t for t in self._trials() if t.number == trial.number)
            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=RETRY_LIMIT)(self.study, frozen)
            raise
        if outcome == "pruned":
            self.report(f"trial {trial.number}: pruned")
            raise optuna.TrialPruned()
        if isinstance(outcome, str):
            self.report(f"trial {trial.number}: failed ({outcome})")
            raise TrialFailed(outcome)
        self.report(f"trial {trial.number}: {self.spec.spec.metric} {outcome:.6g}")
        return outcome

    def _train_trial(self, trial: optuna.Trial, overrides: list[str], run_dirs: list[Path]) -> float | str:
        """Train every seed's run; the mean of their values, ``"pruned"``, or why the trial failed."""
        from vfp.run_layout import holds_a_run

        spec = self.spec.spec
        results: list[float] = []
        for index, (seed, run_dir) in enumerate(zip(spec.seeds, run_dirs, strict=True)):
            if holds_a_run(run_dir):  # a retry: continue the killed run where its checkpoint left it
                args = ["train", "--resume", str(run_dir)]
            else:
                args = ["train", self.spec.experiment, *spec.overrides, *overrides, "--seed", str(seed)]
                args += ["--run-dir", str(run_dir)]
            code, pruned = self._train(trial, [*args, "--progress", "plain"], run_dir, report_to_trial=index == 0)
            if pruned:
                return "pruned"
            if code != 0:
                trial.set_user_attr("exit_code", code)
                return f"`vfp train` exited {code}; see {run_dir / 'train.log'}"
            try:
                value = run_value(read_run(run_dir), spec.metric, spec.statistic)
            except RunReadError as exc:
                return str(exc)
            if not math.isfinite(value):
                return f"{run_dir} has no finite {spec.metric} value"
            results.append(value)
        return statistics.fmean(results)

    def _train(self, trial: optuna.Trial, args: list[str], run_dir: Path, report_to_trial: bool) -> tuple[int, bool]:
        run_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with (run_dir / "train.log").open("ab") as log:
            self.child = subprocess.Popen(
                [self.python, "-m", "vfp", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                pass_fds=(self.lock.fd,),
                preexec_fn=_die_with_parent,
            )
        reported: set[int] = set()
        pruned = False
        try:
            while True:
                code = self.child.poll()
                if report_to_trial and not pruned:
                    pruned = self._report(trial, run_dir, reported)
                    if pruned:
                        self.child.send_signal(signal.SIGTERM)
                if code is not None:
                    return code, pruned
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            if self.child.poll() is None:
                self.child.send_signal(signal.SIGINT)
            self.child.wait()
            raise
        finally:
            self.child = None

    def _report(self, trial: optuna.Trial, run_dir: Path, reported: set[int]) -> bool:
        """Report new evaluations of the metric to the trial; whether the pruner stops it."""
        metric = self.spec.spec.metric
        split, _, name = metric.partition("/") if "/" in metric else ("val", "", metric)
        path = run_dir / "metrics.jsonl"
        if not path.exists():
            return False
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # being written
            step = record.get("step")
            if record.get("split") != split or name not in record or not isinstance(step, int) or step in reported:
                continue
            value = record[name]
            if isinstance(value, int | float):
                trial.report(float(value), step)
                reported.add(step)
        if reported and trial.should_prune():
            self.report(f"trial {trial.number}: pruned at step {max(reported)}")
            return True
        return False


def run_workers(spec_file: Path, workers: int, report: Callable[[str], None]) -> int:
    """Start ``workers`` worker processes (``vfp sweep SPEC``) and wait for all; the worst exit code."""
    processes = [
        subprocess.Popen([sys.executable, "-m", "vfp", "sweep", str(spec_file)], env={**os.environ})
        for _ in range(workers)
    ]
    report(f"started {workers} workers: {', '.join(str(p.pid) for p in processes)}")
    try:
        codes = [p.wait() for p in processes]
    except KeyboardInterrupt:
        codes = [p.wait() for p in processes]  # they got the terminal's SIGINT too
        return 130
    return max(codes, key=abs) if any(codes) else 0
