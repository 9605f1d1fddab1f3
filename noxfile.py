"""Developer sessions. `python -m nox` runs the default ones: tests, lint, typecheck, lerobot.

Every session installs torch through constraints.txt, which pins the local CPU build, except
`lerobot`, whose library needs torch<2.11: it keeps its own large venv outside the clone
(VFP_LEROBOT_VENV, default ~/.cache/vfp/nox-lerobot) and reuses it between runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
CONSTRAINTS = ("-c", str(ROOT / "constraints.txt"))
PACKAGES = ("packages/vfp-core", "packages/vfp-configs", "packages/vfp-il-components")
TEST_DEPS = ("pytest>=8", "pytest-timeout", "POT>=0.9", "hatchling>=1.20", "build>=1.0")
LEROBOT_VENV = Path(os.environ.get("VFP_LEROBOT_VENV", Path.home() / ".cache" / "vfp" / "nox-lerobot"))

nox.options.sessions = ["tests", "lint", "typecheck", "lerobot"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


def _install_project(session: nox.Session, *extra: str) -> None:
    editable = [arg for pkg in PACKAGES for arg in ("-e", pkg)]
    session.install(*CONSTRAINTS, *editable, *extra)


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The whole test suite (without the lerobot tests, which have their own session)."""
    _install_project(session, *TEST_DEPS, "-e", "tests/plugins/vfp-sample")
    # One torch thread per process: the suite runs training subprocesses on a 2-core machine, where
    # oversubscribed intra-op threads stall each other.
    session.run("pytest", "-m", "not lerobot", *session.posargs, env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """mypy: strict on vfp-core, standard on the components."""
    _install_project(session, "mypy>=1.10", "types-PyYAML")
    session.run("mypy", "--strict", "packages/vfp-core/src/vfp")
    session.run("mypy", "packages/vfp-il-components/src", "packages/vfp-configs/src")


@nox.session(python="3.11")
def wheels(session: nox.Session) -> None:
    """Build the three wheels, install them into a fresh venv, and run `vfp plugins list` there."""
    dist = ROOT / "dist"
    session.install("build>=1.0", "hatchling>=1.20")
    for package in PACKAGES:
        session.run("python", "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), package)
    venv = Path(session.create_tmp()) / "fresh-venv"
    session.run("python", "-m", "venv", "--clear", str(venv))
    pip = str(venv / "bin" / "pip")
    wheels = sorted(str(p) for p in dist.glob("vfp_*.whl"))
    session.run(pip, "install", *CONSTRAINTS, *wheels, external=True)
    session.run(str(venv / "bin" / "vfp"), "plugins", "list", external=True)


@nox.session(python="3.11")
def demo(session: nox.Session) -> None:
    """What the README's first command does: install, then train and evaluate the quickstart."""
    _install_project(session)
    work = Path(session.create_tmp()) / "demo"
    work.mkdir(parents=True, exist_ok=True)
    run_dir = str(work / "runs" / f"quickstart-{os.getpid()}")  # a fresh run; the generated demos are reused
    with session.chdir(work):  # the quickstart writes its generated demos under ./data
        session.run("vfp", "train", "quickstart", "--run-dir", run_dir)
        session.run("vfp", "eval", run_dir, "--steps", "1")


@nox.session(python="3.11")
def benchmarks(session: nox.Session) -> None:
    """Run the benchmarks in benchmarks/ (each compares against a named baseline in the same run)."""
    _install_project(session, "POT>=0.9", "hatchling>=1.20", "build>=1.0")
    names = session.posargs or sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py"))
    for name in names:
        session.run("python", f"benchmarks/{name}.py")


@nox.session(python=False)
def lerobot(session: nox.Session) -> None:
    """The lerobot tests (`pytest -m lerobot`) in their own venv outside the clone, reused between runs.

    lerobot 0.4.4 needs torch<2.11, so this venv is installed without constraints.txt: creating it the
    first time downloads torch 2.10 with CUDA wheels (about 8.5 GB, a few minutes). Override its place
    with VFP_LEROBOT_VENV.
    """
    import sys

    python = LEROBOT_VENV / "bin" / "python"
    if not python.exists():
        LEROBOT_VENV.parent.mkdir(parents=True, exist_ok=True)
        session.run(sys.executable, "-m", "venv", str(LEROBOT_VENV), external=True)
        session.run(str(python), "-m", "pip", "install", "--upgrade", "pip", external=True)
    editable = [arg for pkg in (*PACKAGES[:2], "packages/vfp-il-components[lerobot]") for arg in ("-e", pkg)]
    session.run(
        str(python), "-m", "pip", "install", *editable, "-e", "tests/plugins/vfp-sample", *TEST_DEPS, external=True
    )
    session.run(str(python), "-m", "pytest", "-m", "lerobot", *session.posargs, external=True)
