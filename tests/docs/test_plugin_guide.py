"""docs/plugins.md builds a working plugin: the `vfp-diffusion` package written in it installs, validates,
trains and passes its own tests.

Every fenced block of the guide whose first line is ``# file: PATH`` is part of the package (blocks for
the same file are joined in order). The package is made importable the way pip would install it: its
``src`` folder on ``PYTHONPATH`` with a ``.dist-info`` holding the entry points of its pyproject.toml.
Other plugins that happen to be installed (test fixtures) are disabled, so the run sees what a user
with vfp-core, vfp-il-components, vfp-configs and vfp-diffusion sees.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "plugins.md"
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```$", re.MULTILINE | re.DOTALL)
FILE_MARK = "# file: "
PROJECT = {"vfp-core", "vfp-il-components", "vfp-configs"}


def guide_files(text: str) -> dict[str, str]:
    """``path -> content`` of the package the guide writes."""
    files: dict[str, str] = {}
    for block in FENCE.findall(text):
        first, _, body = block.partition("\n")
        if first.startswith(FILE_MARK):
            path = first.removeprefix(FILE_MARK).strip()
            files[path] = files.get(path, "") + body
    return files


def install_like_pip(package: Path) -> Path:
    """Make ``package`` importable with its metadata and entry points; return the folder for PYTHONPATH."""
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    site = package / "src"
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    groups = project.get("entry-points", {})
    (info / "entry_points.txt").write_text(
        "".join(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for group, eps in groups.items())
    )
    return site


def test_the_guide_writes_every_part_of_the_package() -> None:
    files = guide_files(GUIDE.read_text(encoding="utf-8"))
    for path in (
        "pyproject.toml",
        "src/vfp_diffusion/plugin.py",
        "src/vfp_diffusion/trainer.py",
        "tests/test_plugin.py",
    ):
        assert path in files
    assert "configs/diffusion/quickstart.yaml" in " ".join(files)


def test_the_plugin_written_from_the_guide_passes_its_own_tests(tmp_path: Path) -> None:
    package = tmp_path / "vfp-diffusion"
    for path, text in guide_files(GUIDE.read_text(encoding="utf-8")).items():
        target = package / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    site = install_like_pip(package)
    others = {ep.dist.name for ep in metadata.entry_points(group="vfp") if ep.dist and ep.dist.name not in PROJECT}
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "VFP_DISABLE_PLUGINS": ",".join(sorted(others)),
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=package,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-3000:]
