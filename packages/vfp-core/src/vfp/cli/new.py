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
