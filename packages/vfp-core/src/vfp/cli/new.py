"""``vfp new``: start a new experiment from a packaged one."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from vfp._plugins import get_host
from vfp.cli._common import EXIT_USAGE, complete_config, config_errors, err, fail

app = typer.Typer(help="Create new experiments from packaged ones.", no_args_is_help=True)


def _local_references(path: Path, seen: set[Path]) -> None:
    """Collect ``path`` and every file it references by relative path (extends chains, arch files)."""
    from vfp.config._compose import ARCH_KEY, EXTENDS_KEY, is_path_reference
    from vfp.config._yaml import load_yaml_file

    if path in seen:
        return
    seen.add(path)
    data = load_yaml_file(path).data
    if not isinstance(data, dict):
        return
    refs: list[str] = []
    parents = data.get(EXTENDS_KEY)
    refs += [parents] if isinstance(parents, str) else [p for p in parents or [] if isinstance(p, str)]
    model = data.get("model")
    if isinstance(model, dict):
        refs += [c[ARCH_KEY] for c in model.values() if isinstance(c, dict) and isinstance(c.get(ARCH_KEY), str)]
    for ref in refs:
        if is_path_reference(ref) and not Path(ref).expanduser().is_absolute():
            _local_references((path.parent / ref).resolve(), seen)


@app.command()
def experiment(
    dest: Path = typer.Argument(..., help="Folder to create; it must not exist or be empty."),
    source: str = typer.Option(
        ..., "--from", help="Packaged experiment name or YAML path to copy.", autocompletion=complete_config
    ),
) -> None:
    """Copy an experiment and the model configs it references to DEST, ready to edit and train."""
    from vfp.config import ConfigCatalog, load_experiment
    from vfp.config._compose import resolve_config_argument

    with config_errors():
        origin = resolve_config_argument(source, ConfigCatalog(get_host()))
        files: set[Path] = set()
        _local_references(origin, files)
    if dest.exists() and any(dest.iterdir()):
        raise fail(f"{dest} exists and is not empty", EXIT_USAGE)
    root = Path(*_common_root([origin.parent, *(f.parent for f in files)]))
    for file in sorted(files):
        target = dest / file.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, target)
    new_experiment = dest / origin.relative_to(root)
    with config_errors():
        load_experiment(new_experiment)
    err().print(f"created {new_experiment} ({len(files)} file(s)); train it with: vfp train {new_experiment}")


def _common_root(folders: list[Path]) -> tuple[str, ...]:
    parts = [f.resolve().parts for f in folders]
    common: list[str] = []
    for group in zip(*parts, strict=False):
        if len(set(group)) != 1:
            break
        common.append(group[0])
    return tuple(common)


PLUGIN_FILES = {
    "pyproject.toml": """\
[build-system]
requires = ["hatchling>=1.20"]
build-backend = "hatchling.build"

[project]
name = "{dist}"
version = "0.1.0"
description = "A vfp plugin"
requires-python = ">=3.11"
dependencies = ["vfp-core>=0.1", "torch>=2.2"]

# vfp discovers plugins through this entry-point group: no YAML ever names a module.
[project.entry-points.vfp]
{entry} = "{module}.plugin"

[tool.hatch.build.targets.wheel]
packages = ["src/{module}"]
""",
    "README.md": """\
# {dist}

A vfp plugin. Install it next to vfp (`pip install -e .`), then `vfp plugins list` shows its
components and `vfp configs list` its packaged experiments. The loss `{entry}_l1` is usable in YAML:

```yaml
losses:
  flow: {{type: {entry}_l1, weight: 1.0}}
```
""",
    "src/{module}/__init__.py": '"""{dist}: a vfp plugin."""\n',
    "src/{module}/plugin.py": """\
\"\"\"Registration of {dist}'s components. Keep this module light: no torch import here.\"\"\"

from __future__ import annotations

from pathlib import Path

from pydantic import Field

import vfp
from vfp import ComponentKind, ComponentSpec, LossConfig

VFP_CONTRACT = "{contract}"


class L1LossConfig(LossConfig):
    \"\"\"Mean absolute error between predicted and target action chunks.\"\"\"

    reduction: str = Field("mean", pattern="^(mean|sum)$")


@vfp.hookimpl
def vfp_register_components() -> list[ComponentSpec]:
    return [ComponentSpec(ComponentKind.LOSS, "{entry}_l1", L1LossConfig, "{module}.losses:L1Loss", "L1 loss")]


@vfp.hookimpl
def vfp_config_dirs() -> list[Path]:
    return [Path(__file__).parent / "configs"]
""",
    "src/{module}/losses.py": """\
\"\"\"Implementations: imported only when a component is built.\"\"\"

from __future__ import annotations

import torch

from {module}.plugin import L1LossConfig


class L1Loss(torch.nn.Module):
    def __init__(self, config: L1LossConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        error = (pred - target).abs()
        value = error.mean() if self.config.reduction == "mean" else error.sum()
        return self.config.weight * value
""",
    "src/{module}/configs/{entry}/README.md": "Packaged experiments of {dist} go here as YAML files.\n",
    "tests/test_plugin.py": """\
from vfp import PluginHost


def test_the_plugin_registers_its_loss() -> None:
    host = PluginHost()
    assert "{entry}_l1" in host.registry.names("loss")
""",
}


@app.command()
def plugin(
    name: str = typer.Argument(..., help="Distribution name, e.g. vfp-foo."),
    dest: Path = typer.Argument(None, help="Folder to create (default: ./NAME)."),
) -> None:
    """Scaffold a third-party plugin package that works at once (entry point, one loss, configs)."""
    import re

    from vfp._plugins import CONTRACT_VERSION

    if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name):
        raise fail(f"{name!r} is not a valid distribution name: use lowercase words joined by '-'", EXIT_USAGE)
    dest = dest or Path(name)
    if dest.exists() and any(dest.iterdir()):
        raise fail(f"{dest} exists and is not empty", EXIT_USAGE)
    module = name.replace("-", "_")
    entry = module.removeprefix("vfp_") or module
    values = {"dist": name, "module": module, "entry": entry, "contract": CONTRACT_VERSION}
    for relative, template in PLUGIN_FILES.items():
        target = dest / relative.format(**values)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(template.format(**values), encoding="utf-8")
    err().print(f"created plugin {name} in {dest}; install it with: pip install -e {dest}")
