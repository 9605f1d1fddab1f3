"""Sinkhorn loss: geomloss (what the ``sinkhorn`` loss uses) against POT, forward + backward, same run.

Problem: two batches of B action chunks of 16 x 7 (points of R^112), expert ~ N(0, 1) (normalized
actions) and generated ~ N(0.3, 1.2^2); cost |x - y|^2 / 2 (p=2), epsilon = blur^2, uniform weights.
Both libraries compute the same quantity, the entropic OT value OT_eps = <P, C> + eps KL(P | a x b)
(geomloss ``debias=False``; POT ``ot.solve(..., reg_type="KL", method="sinkhorn_log")``), on torch
float32 tensors, with the gradient with respect to the generated points.

- geomloss: ``SamplesLoss("sinkhorn", backend="tensorized")`` with epsilon-scaling (``scaling``).
- POT solve: log-domain Sinkhorn with the envelope gradient (as geomloss), run for a fixed number of
  iterations calibrated once, at B=512, to reach the accuracy of geomloss at the benchmarked scaling
  (matched accuracy); POT's stopping test (marginal violation) scales with B, iterations do not.
- POT sinkhorn2: ``ot.sinkhorn2`` with autodiff through the iterations (POT's default for torch
  inputs); it returns only <P, C>, so only its time and memory are compared.

Accuracy is the relative error against a reference OT_eps: POT in float64 after 400 iterations (for
B <= --max-reference; the output says how little it moved from 200). A last table repeats the
matched-accuracy comparison at smaller blur, where plain Sinkhorn iterations (POT) slow down much more
than epsilon-scaling (geomloss); its reference is geomloss in float64 with scaling 0.995.

Peak memory is the growth of the process's peak resident set (VmHWM, reset through
/proc/self/clear_refs) during one forward + backward, measured in a child process where glibc's mmap
threshold is fixed so that freed tensors leave the resident set (this slows allocation, so the timings
are taken in the parent process without it). Times are the fastest of --repeat runs, with one torch thread
by default (--threads): with two threads on a 2-core machine shared with other work, OpenMP barriers
turned every preemption into stalls of up to a second. CPU seconds are given too and ratios use them.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import math
import os
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ot
import torch
from geomloss import SamplesLoss

HORIZON, ACTION_DIM = 16, 7
BATCH_SIZES = (64, 128, 256, 512, 1024, 2048, 4096)
SCALINGS = (0.5, 0.7, 0.9, 0.95, 0.99)
POT_ITERATIONS = (5, 10, 20, 30, 50, 100, 200, 500, 1000)
CALIBRATION_SIZE = 512
REFERENCE_ITERATIONS = 400
BLURS = (1.0, 0.5, 0.25, 0.1)
BLUR_TABLE_SIZE = 256
POT_ITERATION_CAP = 2000
STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass
class Measurement:
    wall: float
    cpu: float
    value: float


def chunks(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated and expert chunks, flattened to (B, 112) points."""
    generator = torch.Generator().manual_seed(seed)
    expert = torch.randn(batch, HORIZON, ACTION_DIM, generator=generator)
    generated = 1.2 * torch.randn(batch, HORIZON, ACTION_DIM, generator=generator) + 0.3
    return generated.reshape(batch, -1), expert.reshape(batch, -1)


def _status_kb(key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", STATUS.read_text(), re.MULTILINE)
    return int(match.group(1)) if match else 0


def _fixed_mmap_threshold() -> bool:
    """Make glibc serve large blocks with mmap and return them to the system on free, for every size.

    glibc raises its mmap threshold after large frees, after which big tensors come from the heap and
    stay resident when freed: later runs would then reuse those pages and show no memory growth.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(-3, 128 * 1024))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def _reset_peak() -> bool:
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def measure(run: Callable[[], float], repeat: int) -> Measurement:
    """Fastest wall and CPU seconds of ``run`` over ``repeat`` runs (forward + backward, returns the
    value): the minimum is the least disturbed by other load."""
    walls, cpus = [], []
    value = math.nan
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        value = run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return Measurement(min(walls), min(cpus), value)


def peak_memory_mb(run: Callable[[], float]) -> float | None:
    """Growth of the peak resident set during one run, in MB (None where it cannot be measured)."""
    if not _reset_peak():
        return None
    before = _status_kb("VmRSS")
    run()
    return max(0, _status_kb("VmHWM") - before) / 1024


def methods(size: int, args: argparse.Namespace, iterations: int) -> dict[str, Callable[[], float] | None]:
    """The runs of the main table at one batch size (None: skipped at this size)."""
    x, y = chunks(size)
    return {
        "geomloss": geomloss_run(x, y, args.blur, args.scaling),
        "geomloss debiased": geomloss_run(x, y, args.blur, args.scaling, debias=True),
        "POT solve": pot_solve_run(x, y, args.blur, iterations) if size <= args.max_pot_solve else None,
        "POT sinkhorn2": pot_sinkhorn2_run(x, y, args.blur, iterations) if size <= args.max_pot_sinkhorn2 else None,
    }


def memory_worker(args: argparse.Namespace) -> None:
    """Child process: print the peak memory growth of every run of the main table, as JSON.

    Separate from the timings because it fixes glibc's mmap threshold, which slows allocation down.
    """
    fixed = _fixed_mmap_threshold()
    geomloss_run(*chunks(64), args.blur, args.scaling)()  # warm-up: one-time allocations
    pot_solve_run(*chunks(64), args.blur, 5)()
    peaks: dict[str, float | None] = {}
    for size in [size for size in BATCH_SIZES if size <= args.max_batch]:
        for name, run in methods(size, args, args.memory_worker).items():
            if run is not None:
                peaks[f"{name}:{size}"] = peak_memory_mb(run) if fixed else None
    print(json.dumps(peaks))


def measure_memory(args: argparse.Namespace, iterations: int) -> dict[str, float | None]:
    command = [sys.executable, __file__, "--memory-worker", str(iterations)]
    for option in ("blur", "scaling", "max_batch", "max_pot_solve", "max_pot_sinkhorn2"):
        command += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"(memory worker failed: {done.stderr.strip().splitlines()[-1:]})")
        return {}
    peaks: dict[str, float | None] = json.loads(done.stdout.strip().splitlines()[-1])
    return peaks


def geomloss_run(
    x: torch.Tensor, y: torch.Tensor, blur: float, scaling: float, debias: bool = False
) -> Callable[[], float]:
    loss = SamplesLoss("sinkhorn", p=2, blur=blur, scaling=scaling, debias=debias, backend="tensorized")

    def run() -> float:
        generated = x.clone().requires_grad_(True)
        value = loss(generated, y)
        value.backward()
        return value.item()

    return run


def pot_solve_run(x: torch.Tensor, y: torch.Tensor, blur: float, iterations: int) -> Callable[[], float]:
    weights = torch.full((len(x),), 1.0 / len(x)), torch.full((len(y),), 1.0 / len(y))

    def run() -> float:
        generated = x.clone().requires_grad_(True)
        cost = ot.dist(generated, y) / 2
        result = ot.solve(
            cost,
            *weights,
            reg=blur**2,
            reg_type="KL",
            method="sinkhorn_log",
            max_iter=iterations,
            tol=0.0,
            grad="envelope",
        )
        result.value.backward()
        return result.value.item()

    return run


def pot_sinkhorn2_run(x: torch.Tensor, y: torch.Tensor, blur: float, iterations: int) -> Callable[[], float]:
    a, b = torch.full((len(x),), 1.0 / len(x)), torch.full((len(y),), 1.0 / len(y))

    def run() -> float:
        generated = x.clone().requires_grad_(True)
        cost = ot.dist(generated, y) / 2
        value = ot.sinkhorn2(a, b, cost, blur**2, method="sinkhorn_log", numItermax=iterations, stopThr=0.0)
        value.backward()
        return value.item()

    return run


def reference_value(x: torch.Tensor, y: torch.Tensor, blur: float, iterations: int = REFERENCE_ITERATIONS) -> float:
    """OT_eps by POT's log-domain Sinkhorn in float64 after a fixed, generous number of iterations."""
    a = torch.full((len(x),), 1.0 / len(x), dtype=torch.float64)
    b = torch.full((len(y),), 1.0 / len(y), dtype=torch.float64)
    cost = ot.dist(x.double(), y.double()) / 2
    result = ot.solve(cost, a, b, reg=blur**2, reg_type="KL", method="sinkhorn_log", max_iter=iterations, tol=0.0)
    return float(result.value)


def annealed_reference(x: torch.Tensor, y: torch.Tensor, blur: float) -> float:
    """OT_eps by geomloss in float64 with a very slow epsilon-scaling (0.995): converges at small blur,
    where plain Sinkhorn iterations (POT) would need far too many iterations."""
    loss = SamplesLoss("sinkhorn", p=2, blur=blur, scaling=0.995, debias=False, backend="tensorized")
    return float(loss(x.double(), y.double()))


def relative_error(value: float, reference: float | None) -> float | None:
    return None if reference is None else abs(value - reference) / abs(reference)


def ms(run: Measurement | None) -> str:
    """A table cell: wall milliseconds, with CPU milliseconds (all threads) in brackets."""
    return "-" if run is None else f"{run.wall * 1e3:.1f} ({run.cpu * 1e3:.0f})"


def fit_exponent(sizes: list[int], seconds: list[float]) -> float:
    """Slope of log(time) against log(B): cost ~ B^slope."""
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


class PotCurve:
    """POT's error against iterations on one problem, run lazily from the fewest iterations up."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, blur: float, reference: float, repeat: int) -> None:
        self.x, self.y, self.blur, self.reference, self.repeat = x, y, blur, reference, repeat
        self.points: list[tuple[int, float, Measurement]] = []
        self.grid = [it for it in POT_ITERATIONS if it <= POT_ITERATION_CAP]

    def matching(self, error: float) -> tuple[int, Measurement] | None:
        """Fewest iterations (from the grid) whose relative error is at most ``error``."""
        for iterations, err, measured in self.points:
            if err <= error:
                return iterations, measured
        for iterations in self.grid[len(self.points) :]:
            measured = measure(pot_solve_run(self.x, self.y, self.blur, iterations), self.repeat)
            err = relative_error(measured.value, self.reference) or 0.0
            self.points.append((iterations, err, measured))
            if err <= error:
                return iterations, measured
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blur", type=float, default=1.0, help="blur (epsilon = blur^2) of the main table")
    parser.add_argument("--scaling", type=float, default=0.5, help="geomloss scaling of the main table")
    parser.add_argument("--max-batch", type=int, default=4096)
    parser.add_argument("--max-pot-solve", type=int, default=4096, help="largest batch for POT solve")
    parser.add_argument("--max-pot-sinkhorn2", type=int, default=1024, help="largest batch for POT sinkhorn2")
    parser.add_argument("--max-reference", type=int, default=1024, help="largest batch with a float64 reference")
    parser.add_argument("--repeat", type=int, default=5, help="runs per timing (2 for B >= 2048); the fastest counts")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; 1 (default) keeps timings steady when other processes compete for the cores",
    )
    parser.add_argument("--skip-blur-table", action="store_true")
    parser.add_argument("--memory-worker", type=int, default=0, help=argparse.SUPPRESS)  # POT iterations
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    warnings.filterwarnings("ignore", message="Sinkhorn did not converge")
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True")
    torch.set_num_threads(args.threads)
    if args.memory_worker:
        memory_worker(args)
        return
    started = time.perf_counter()
    sizes = [size for size in BATCH_SIZES if size <= args.max_batch]

    try:
        import pykeops  # noqa: F401

        keops = "pykeops is installed, but this benchmark times the tensorized backend only"
    except ImportError:
        keops = "pykeops is NOT installed: geomloss's online/multiscale (KeOps) backends were not measured"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, POT {ot.__version__}")
    memory = "peak memory from VmHWM, in a separate process" if _reset_peak() else "peak memory NOT measured"
    print(f"{keops}; {memory}")
    print(f"p=2, blur={args.blur} (epsilon={args.blur**2:g}), points of R^{HORIZON * ACTION_DIM}, debias=False\n")

    # Calibration of POT's iteration count to geomloss's accuracy, at one size.
    x, y = chunks(CALIBRATION_SIZE)
    reference = reference_value(x, y, args.blur)
    half = reference_value(x, y, args.blur, REFERENCE_ITERATIONS // 2)
    geomloss_error = relative_error(measure(geomloss_run(x, y, args.blur, args.scaling), 1).value, reference)
    assert geomloss_error is not None
    calibration = PotCurve(x, y, args.blur, reference, args.repeat)
    matched = calibration.matching(geomloss_error)
    iterations = matched[0] if matched else POT_ITERATION_CAP
    print(
        f"Reference: POT float64, {REFERENCE_ITERATIONS} iterations (changes by "
        f"{abs(reference - half) / abs(reference):.1e} from {REFERENCE_ITERATIONS // 2}).\n"
        f"Matched accuracy: geomloss (scaling={args.scaling}) has relative error {geomloss_error:.1e} at "
        f"B={CALIBRATION_SIZE}; POT reaches it after {iterations} iterations "
        f"({', '.join(f'{it} it: {err:.1e}' for it, err, _ in calibration.points)}).\n"
    )

    # Main table: cost against batch size.
    print(f"### Forward + backward against batch size (geomloss scaling={args.scaling}, POT {iterations} iterations)\n")
    print(
        "| B | geomloss ms (CPU) | geomloss MB | geomloss debiased ms (CPU) | POT solve ms (CPU) | POT solve MB "
        "| POT sinkhorn2 ms (CPU) | POT sinkhorn2 MB | POT solve / geomloss (CPU) | geomloss err | POT err "
        "| geomloss vs POT |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    timings: dict[str, tuple[list[int], list[float]]] = {
        "geomloss": ([], []),
        "geomloss debiased": ([], []),
        "POT solve": ([], []),
        "POT sinkhorn2": ([], []),
    }
    peaks = measure_memory(args, iterations)
    measure(geomloss_run(*chunks(64), args.blur, args.scaling), 1)  # warm-up
    for size in sizes:
        x, y = chunks(size)
        repeat = args.repeat if size <= 1024 else min(args.repeat, 2)
        runs = {
            name: None if run is None else measure(run, repeat) for name, run in methods(size, args, iterations).items()
        }

        def peak(name: str, size: int = size) -> str:
            return fmt(peaks.get(f"{name}:{size}"), ".0f")

        for name, run in runs.items():
            if run is not None:
                timings[name][0].append(size)
                timings[name][1].append(run.cpu)
        ref = reference_value(x, y, args.blur) if size <= args.max_reference else None
        geo, debiased, solve, autodiff = runs.values()
        assert geo is not None

        solve_cells = ["-", "-", "-", "-"]
        if solve is not None:
            solve_cells = [
                peak("POT solve"),
                f"{solve.cpu / geo.cpu:.2f}",
                fmt(relative_error(solve.value, ref), ".1e"),
                f"{abs(geo.value - solve.value) / abs(solve.value):.1e}",
            ]
        print(
            f"| {size} | {ms(geo)} | {peak('geomloss')} | {ms(debiased)} | {ms(solve)} | {solve_cells[0]} "
            f"| {ms(autodiff)} | {peak('POT sinkhorn2')} | {solve_cells[1]} "
            f"| {fmt(relative_error(geo.value, ref), '.1e')} | {solve_cells[2]} | {solve_cells[3]} |"
        )
    skipped = [
        f"POT solve above B={args.max_pot_solve}" if args.max_pot_solve < sizes[-1] else "",
        f"POT sinkhorn2 above B={args.max_pot_sinkhorn2} (its autodiff keeps every iteration's B x B matrices)"
        if args.max_pot_sinkhorn2 < sizes[-1]
        else "",
        f"float64 references above B={args.max_reference} (too slow)" if args.max_reference < sizes[-1] else "",
    ]
    if any(skipped):
        print(f"\nNot run: {'; '.join(item for item in skipped if item)}.")
    print("\nCost growth, CPU time ~ B^k fitted for B >= 256:")
    for name, (fit_sizes, seconds) in timings.items():
        large = [(s, t) for s, t in zip(fit_sizes, seconds, strict=True) if s >= 256]
        if len(large) >= 2:
            exponent = fit_exponent([s for s, _ in large], [t for _, t in large])
            print(f"- {name}: k = {exponent:.2f} (B = {large[0][0]}..{large[-1][0]})")
    print("Peak memory ~ B^k fitted for B >= 256:")
    for name in timings:
        points = [(size, peaks.get(f"{name}:{size}")) for size in sizes if size >= 256]
        known = [(size, mb) for size, mb in points if mb]
        if len(known) >= 2:
            exponent = fit_exponent([s for s, _ in known], [mb for _, mb in known])
            print(f"- {name}: k = {exponent:.2f} (B = {known[0][0]}..{known[-1][0]})")

    # Accuracy / speed trade of geomloss's scaling, with the POT iterations that match each accuracy.
    x, y = chunks(CALIBRATION_SIZE)
    print(f"\n### geomloss scaling: accuracy against speed (B={CALIBRATION_SIZE}, blur={args.blur})\n")
    print(
        "| scaling | geomloss ms (CPU) | rel. error | CPU vs scaling 0.5 | POT iterations to match | POT ms (CPU) "
        "| POT / geomloss (CPU) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    base_cpu: float | None = None
    for scaling in SCALINGS:
        geo = measure(geomloss_run(x, y, args.blur, scaling), args.repeat)
        error = relative_error(geo.value, reference) or 0.0
        base_cpu = base_cpu or geo.cpu
        found = calibration.matching(error)
        print(
            f"| {scaling} | {ms(geo)} | {error:.1e} | {geo.cpu / base_cpu:.2f} "
            f"| {found[0] if found else f'> {POT_ITERATION_CAP}'} | {ms(found and found[1])} "
            f"| {fmt(found and found[1].cpu / geo.cpu, '.2f')} |"
        )

    if not args.skip_blur_table:
        # Smaller blur: plain Sinkhorn (POT) needs many more iterations, epsilon-scaling (geomloss) a few more.
        x, y = chunks(BLUR_TABLE_SIZE)
        print(f"\n### Smaller blur (B={BLUR_TABLE_SIZE}; reference: geomloss float64, scaling 0.995)\n")
        print(
            "| blur | scaling | geomloss ms (CPU) | rel. error | POT iterations to match | POT ms (CPU) "
            "| POT / geomloss (CPU) |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for blur in BLURS:
            blur_reference = annealed_reference(x, y, blur)
            curve = PotCurve(x, y, blur, blur_reference, 1)
            for scaling in (0.5, 0.9):
                geo = measure(geomloss_run(x, y, blur, scaling), args.repeat)
                error = relative_error(geo.value, blur_reference) or 0.0
                found = curve.matching(error)
                print(
                    f"| {blur} | {scaling} | {ms(geo)} | {error:.1e} "
                    f"| {found[0] if found else f'> {POT_ITERATION_CAP}'} | {ms(found and found[1])} "
                    f"| {fmt(found and found[1].cpu / geo.cpu, '.2f')} |"
                )
    print(f"\nTotal benchmark time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
