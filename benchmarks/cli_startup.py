"""CLI start-up: `vfp --help` and `vfp plugins list` against `import torch` and `python -c pass`.

Each command runs REPEAT times in a fresh process; the table shows medians. Extra dummy plugin
distributions (a dist-info with an entry point, plus a plugin module registering one component with a
pydantic config model) are installed into a folder on PYTHONPATH: 0, 10 and 100 of them. The runs of
the three plugin counts are interleaved, so that a change in the machine's load affects them alike, and
each command is compared with itself without extra plugins in the same run (the "ratio" columns).

Targets (issue 2): `vfp plugins list` under 0.3 s and under a quarter of `import torch`; 100 extra
plugins add under 50 ms.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLUGIN_MODULE = """\
import vfp
from vfp import ComponentConfig, ComponentKind, ComponentSpec

VFP_CONTRACT = "1.1"


class DummyConfig(ComponentConfig):
    scale: float = 1.0


@vfp.hookimpl
def vfp_register_components():
    return [ComponentSpec(ComponentKind.MODEL, "dummy_{i}", DummyConfig, "{module}:DummyConfig")]
"""


def install_dummy_plugins(folder: Path, count: int) -> None:
    """Write ``count`` installed-looking distributions (dist-info + module) into ``folder``.

    Modules are byte-compiled as pip does at install time."""
    for i in range(count):
        module = f"vfp_dummy_{i}"
        (folder / f"{module}.py").write_text(PLUGIN_MODULE.replace("{i}", str(i)).replace("{module}", module))
        info = folder / f"vfp_dummy_{i}-1.0.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vfp-dummy-{i}\nVersion: 1.0.0\n")
        (info / "entry_points.txt").write_text(f"[vfp]\ndummy_{i} = {module}\n")
        (info / "RECORD").write_text("")
    compileall.compile_dir(folder, quiet=1)


def run_once(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run of ``command``."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{command} exited with {process.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def median_seconds(command: list[str], env: dict[str, str], repeat: int) -> tuple[float, float]:
    """Median wall and CPU seconds over ``repeat`` runs (after one warm-up run).

    CPU time is reported too: on a shared 2-core machine it is far less disturbed by other load.
    """
    return interleaved_medians(command, [env], repeat)[0]


def interleaved_medians(command: list[str], envs: list[dict[str, str]], repeat: int) -> list[tuple[float, float]]:
    """Median wall and CPU seconds of ``command`` in each environment, the runs taking turns.

    One warm-up run per environment first (file cache, .pyc files).
    """
    for env in envs:
        run_once(command, env)
    runs: list[list[tuple[float, float]]] = [[] for _ in envs]
    for _ in range(repeat):
        for env, times in zip(envs, runs, strict=True):
            times.append(run_once(command, env))
    return [(statistics.median(r[0] for r in times), statistics.median(r[1] for r in times)) for times in runs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=11)
    args = parser.parse_args()

    vfp = shutil.which("vfp", path=str(Path(sys.executable).parent)) or shutil.which("vfp")
    if vfp is None:
        raise SystemExit("the `vfp` command is not installed in this environment")
    python = sys.executable
    # Users' installs have byte-code (pip compiles at install time); a PYTHONDONTWRITEBYTECODE set in
    # this shell would make every run recompile the sources and measure that instead.
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("VFP_") and k != "PYTHONDONTWRITEBYTECODE"}

    rows: list[tuple[str, int, tuple[float, float]]] = []
    baselines = {
        "python -c pass": median_seconds([python, "-c", "pass"], base_env, args.repeat),
        "python -c 'import torch'": median_seconds([python, "-c", "import torch"], base_env, max(3, args.repeat // 2)),
    }
    counts = (0, 10, 100)
    commands = [
        ("vfp --help", [vfp, "--help"]),
        ("vfp plugins list", [vfp, "plugins", "list"]),
        ("vfp plugins list --json", [vfp, "plugins", "list", "--json"]),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        envs = []
        for count in counts:
            folder = Path(tmp) / f"plugins_{count}"
            folder.mkdir()
            install_dummy_plugins(folder, count)
            env = {**base_env, "PYTHONPATH": str(folder)}
            listed = subprocess.run([vfp, "plugins", "list", "--json"], env=env, capture_output=True, text=True)
            if listed.returncode != 0 or listed.stdout.count('"status": "ok"') < count:
                raise SystemExit(f"dummy plugins were not all loaded:\n{listed.stderr}")
            envs.append(env)
        for label, cmd in commands:
            for count, times in zip(counts, interleaved_medians(cmd, envs, args.repeat), strict=True):
                rows.append((label, count, times))

    torch_wall, torch_cpu = baselines["python -c 'import torch'"]
    print(f"median of {args.repeat} runs, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}\n")
    print(
        "| command | extra plugins | wall (s) | CPU (s) | wall / import torch | CPU + vs 0 plugins (ms) "
        "| CPU ratio vs 0 plugins | wall ratio vs 0 plugins |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, (wall, cpu) in baselines.items():
        print(f"| `{label}` | - | {wall:.3f} | {cpu:.3f} | {wall / torch_wall:.2f} | - | - | - |")
    zero = {label: times for label, count, times in rows if count == 0}
    for label, count, (wall, cpu) in rows:
        wall0, cpu0 = zero[label]
        print(
            f"| `{label}` | {count} | {wall:.3f} | {cpu:.3f} | {wall / torch_wall:.2f} | {(cpu - cpu0) * 1000:+.0f} "
            f"| {cpu / cpu0:.2f} | {wall / wall0:.2f} |"
        )
    listing = {count: times for label, count, times in rows if label == "vfp plugins list"}
    wall0, cpu0 = listing[0]
    print()
    print(f"target `vfp plugins list` < 0.3 s: wall {wall0:.3f} s, CPU {cpu0:.3f} s")
    print(f"target < 1/4 of import torch: wall ratio {wall0 / torch_wall:.2f}, CPU ratio {cpu0 / torch_cpu:.2f}")
    print(
        f"target 100 plugins add < 50 ms: CPU {(listing[100][1] - cpu0) * 1000:+.0f} ms, "
        f"wall {(listing[100][0] - wall0) * 1000:+.0f} ms"
    )


if __name__ == "__main__":
    main()
