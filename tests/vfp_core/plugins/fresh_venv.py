"""Build wheels and install them into a fresh virtual environment, as a user would (for the slow tests).

torch comes from the local CPU build through constraints.txt (pip's configured find-links), so no
large download happens; nothing from the test environment leaks in (no --system-site-packages).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PROJECT_PACKAGES = [ROOT / "packages" / name for name in ("vfp-core", "vfp-configs", "vfp-il-components")]
CONSTRAINTS = ROOT / "constraints.txt"


def build_wheels(sources: Sequence[Path], dist: Path) -> list[Path]:
    """One wheel per source folder (no build isolation: hatchling comes from the test environment)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist)]
        + [str(source) for source in sources],
        check=True,
    )
    wheels = sorted(dist.glob("*.whl"))
    assert len(wheels) == len(sources), wheels
    return wheels


@dataclass
class FreshVenv:
    """A virtual environment with only what was installed into it."""

    path: Path

    @classmethod
    def create(cls, path: Path, requirements: Sequence[str | Path]) -> FreshVenv:
        venv.create(path, with_pip=True, clear=True)
        env = cls(path)
        env.pip("install", "-q", "--no-compile", "-c", str(CONSTRAINTS), *map(str, requirements))
        return env

    def _env(self, extra: dict[str, str] | None) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("VFP_", "PYTHON"))}
        return {**clean, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **(extra or {})}

    def pip(self, *args: str) -> None:
        subprocess.run([str(self.path / "bin" / "pip"), *args], check=True, env=self._env(None))

    def run(
        self, program: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run one of the venv's programs (``vfp``, ``python``, ``pytest``)."""
        return subprocess.run(
            [str(self.path / "bin" / program), *args],
            capture_output=True,
            text=True,
            env=self._env(env),
            cwd=cwd,
            check=False,
        )
