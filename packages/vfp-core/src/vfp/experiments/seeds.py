"""``vfp train CONFIG --seeds 0,1,2``: one run per seed, sequentially or N at a time.

Each seed is its own ``vfp train`` process (``--seed S --run-dir BASE-seedS``), so a seed's run is exactly
the run ``vfp train CONFIG --seed S`` makes: same seeding, same signal handling, its own run folder, and
``vfp train --resume BASE-seedS`` continues it alone. The folders differ only by seed, so
``vfp runs compare 'BASE-seed*'`` groups them (mean ± std over seeds).

With ``--parallel N`` (N > 1) a seed's output goes to ``train.log`` in its run folder instead of the
terminal, and a line per finished seed is printed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SeedRun", "parse_seeds", "run_seeds", "seed_run_dir"]

LOG_FILE = "train.log"


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"``, ``"0-4"`` or a mix (``"0-2,7"``); ValueError with the reason for anything else."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        first, dash, last = part.partition("-")
        try:
            if dash and first:
                low, high = int(first), int(last)
                if high < low:
                    raise ValueError(f"{part!r}: the range ends before it starts")
                seeds.extend(range(low, high + 1))
            else:
                seeds.append(int(part))
        except ValueError as exc:
            reason = str(exc) if "range ends" in str(exc) else "expected integers such as 0,1,2 or 0-4"
            raise ValueError(f"--seeds {text!r}: {reason}") from None
    if not seeds:
        raise ValueError(f"--seeds {text!r}: no seed given")
    duplicates = sorted({s for s in seeds if seeds.count(s) > 1})
    if duplicates:
        raise ValueError(f"--seeds {text!r}: seed {duplicates[0]} is given twice")
    return seeds


def seed_run_dir(base: Path, seed: int) -> Path:
    """``runs/NAME-DATE-TIME`` → ``runs/NAME-DATE-TIME-seed3``."""
    return base.with_name(f"{base.name}-seed{seed}")


@dataclass
class SeedRun:
    seed: int
    run_dir: Path
    exit_code: int | None = None


def _child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def run_seeds(
    train_args: Sequence[str],
    runs: Sequence[SeedRun],
    parallel: int = 1,
    *,
    report: Callable[[str], None] = print,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run ``python -m vfp train TRAIN_ARGS --seed S --run-dir D`` for every seed; the combined exit code.

    0 when every seed completed; 130/143 when interrupted (the seeds not started yet are skipped, a
    running seed checkpoints and stops as it does alone); otherwise the first non-zero exit code.
    """
    pending = list(runs)
    active: list[tuple[SeedRun, subprocess.Popen[bytes]]] = []
    stopped: int | None = None
    child_env = dict(env) if env is not None else _child_env()

    def start(run: SeedRun) -> subprocess.Popen[bytes]:
        command = [python, "-m", "vfp", "train", *train_args, "--seed", str(run.seed), "--run-dir", str(run.run_dir)]
        report(f"seed {run.seed}: training in {run.run_dir}")
        if parallel <= 1:
            return subprocess.Popen(command, env=child_env)
        run.run_dir.mkdir(parents=True, exist_ok=True)
        with (run.run_dir / LOG_FILE).open("ab") as log:
            return subprocess.Popen(command, env=child_env, stdout=log, stderr=subprocess.STDOUT)

    try:
        while pending or active:
            while pending and len(active) < max(parallel, 1) and stopped is None:
                run = pending.pop(0)
                active.append((run, start(run)))
            if stopped is not None and not active:
                break
            if parallel > 1:
                time.sleep(0.2)
            for item in list(active):
                run, process = item
                code = process.poll() if parallel > 1 else process.wait()
                if code is None:
                    continue
                active.remove(item)
                run.exit_code = code
                where = f" (log: {run.run_dir / LOG_FILE})" if parallel > 1 and code != 0 else ""
                report(f"seed {run.seed}: exit {code}{where}")
                if code in (130, 143) and stopped is None:
                    stopped = code
            if stopped is not None:
                pending.clear()
    except KeyboardInterrupt:
        # the terminal sent SIGINT to the children too: wait for them to checkpoint and stop
        for _, process in active:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for run, process in active:
            run.exit_code = process.wait()
        stopped = 130
    if stopped is not None:
        return stopped
    codes = [run.exit_code for run in runs if run.exit_code]
    return int(codes[0]) if codes else 0
