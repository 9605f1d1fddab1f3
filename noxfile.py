"""Developer sessions. `python -m nox` runs the default ones: tests, lint, typecheck, docs, lerobot, openpi.

Every session installs torch through constraints.txt, which pins the local CPU build, except
`lerobot`, whose library needs torch<2.11: it keeps its own large venv outside the clone
(VFP_LEROBOT_VENV, default ~/.cache/vfp/nox-lerobot) and reuses it between runs. `openpi` likewise keeps
openpi's client (numpy<2) in a small venv outside the clone (VFP_OPENPI_VENV, default ~/.cache/vfp/nox-openpi).
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
CONSTRAINTS = ("-c", str(ROOT / "constraints.txt"))
PACKAGES = ("packages/vfp-core", "packages/vfp-configs", "packages/vfp-il-components")
TEST_DEPS = (
    "pytest>=8",
    "pytest-timeout",
    "POT>=0.9",
    "hatchling>=1.20",
    "build>=1.0",
    "jsonschema>=4.18",
    "hypothesis>=6.100",
)
SERVE_DEPS = ("websockets>=13", "msgpack>=1.0")
"""The `serve` extra of vfp-core (`vfp serve`), which the tests and the type check need."""
EXPERIMENT_DEPS = ("matplotlib>=3.7", "optuna>=4.0", "wandb>=0.19", "mlflow>=2.14")
ENV_DEPS = ("gymnasium>=1.0", "imageio>=2.31")
"""The `envs` extra (gymnasium vector envs, imageio videos): the synthetic tasks' env components and `--video`."""
METAWORLD_DEPS = ("metaworld>=3.1,<3.2", "packaging>=23")
"""The `metaworld` extra (MetaWorld 3 with MuJoCo, ~40 MB of wheels): the `metaworld` env and its demos."""
"""The `plot`, `sweep`, `wandb` and `mlflow` extras of vfp-core, which tests/experiments use."""
LEROBOT_VENV = Path(os.environ.get("VFP_LEROBOT_VENV", Path.home() / ".cache" / "vfp" / "nox-lerobot"))

OPENPI_VENV = Path(os.environ.get("VFP_OPENPI_VENV", Path.home() / ".cache" / "vfp" / "nox-openpi"))
OPENPI_CLIENT = ("openpi-client==0.1.2", "typing_extensions")
"""openpi-client 0.1.2 imports typing_extensions without declaring it."""

nox.options.sessions = ["tests", "lint", "typecheck", "docs", "lerobot", "openpi"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


def _install_project(session: nox.Session, *extra: str) -> None:
    editable = [arg for pkg in PACKAGES for arg in ("-e", pkg)]
    session.install(*CONSTRAINTS, *editable, *extra)


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The whole test suite (without the lerobot tests, which have their own session)."""
    _install_project(
        session, *TEST_DEPS, *SERVE_DEPS, *EXPERIMENT_DEPS, *ENV_DEPS, *METAWORLD_DEPS, "-e", "tests/plugins/vfp-sample"
    )
    # One torch thread per process: the suite runs training subprocesses on a 2-core machine, where
    # oversubscribed intra-op threads stall each other.
    threads = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    session.run("pytest", "-m", "not lerobot and not openpi", *session.posargs, env=threads)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """mypy: strict on vfp-core, standard on the components."""
    _install_project(session, "mypy>=1.10", "types-PyYAML", *SERVE_DEPS, *EXPERIMENT_DEPS)
    session.run("mypy", "--strict", "packages/vfp-core/src/vfp")
    session.run("mypy", "packages/vfp-il-components/src", "packages/vfp-configs/src")


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """Fail when a generated file differs from the code, and print the diff.

    Generated from the code by `python -m vfp._docgen` (run it from the repository root to regenerate, then
    commit): docs/reference/{hooks,config,cli}.md, the JSON Schemas in
    packages/vfp-configs/src/vfp_configs/schemas/ and the `# yaml-language-server: $schema=...` first line of
    every packaged YAML. The regenerated copy is left under .nox/docs/tmp/generated for inspection.
    """
    _install_project(session)
    out = Path(session.create_tmp()) / "generated"
    session.run("python", "-m", "vfp._docgen", "--check", "--out", str(out), *session.posargs)


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
    _install_project(session, "POT>=0.9", "hatchling>=1.20", "build>=1.0", *SERVE_DEPS, *ENV_DEPS, *METAWORLD_DEPS)
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
    editable = [arg for pkg in (*PACKAGES[:2], "packages/vfp-il-components[lerobot,metaworld]") for arg in ("-e", pkg)]
    session.run(
        str(python), "-m", "pip", "install", *editable, "-e", "tests/plugins/vfp-sample", *TEST_DEPS, external=True
    )
    # Only the folder that holds lerobot tests: other test modules import extras this venv does not have.
    paths = session.posargs or [
        "tests/vfp_il_components/data",
        "tests/vfp_il_components/envs/test_lerobot_diffusion_adapter.py",
    ]
    session.run(str(python), "-m", "pytest", "-m", "lerobot", *paths, external=True)


@nox.session(python="3.11")
def openpi(session: nox.Session) -> None:
    """openpi's real `openpi-client` against `vfp serve` (`pytest -m openpi`).

    openpi-client pins numpy<2, so it lives in its own small venv outside the clone (VFP_OPENPI_VENV,
    default ~/.cache/vfp/nox-openpi), created once and reused; the tests start `vfp serve` from this
    session's venv and run a client script with that venv's python.
    """
    import sys

    _install_project(session, *TEST_DEPS, *SERVE_DEPS)
    python = OPENPI_VENV / "bin" / "python"
    if not python.exists():
        OPENPI_VENV.parent.mkdir(parents=True, exist_ok=True)
        session.run(sys.executable, "-m", "venv", str(OPENPI_VENV), external=True)
    session.run(str(python), "-m", "pip", "install", "--quiet", *OPENPI_CLIENT, external=True)
    env = {"VFP_OPENPI_PYTHON": str(python), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    session.run("pytest", "-m", "openpi", *(session.posargs or ["tests/vfp_core/policy"]), env=env)
