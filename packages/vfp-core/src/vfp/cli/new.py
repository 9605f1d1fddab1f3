"""``vfp new``: start a new experiment from a packaged one, or a new plugin package (see ``_scaffold``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from vfp._plugins import get_host
from vfp.cli._common import EXIT_USAGE, complete_config, config_errors, err, fail

app = typer.Typer(help="Create new experiments from packaged ones, and new plugin packages.", no_args_is_help=True)


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
        load_experiment(origin)  # a source that is not a valid experiment is refused before anything is written
        files: set[Path] = set()
        _local_references(origin, files)
    if dest.exists() and any(dest.iterdir()):
        raise fail(f"{dest} exists and is not empty", EXIT_USAGE)
    root = Path(*_common_root([origin.parent, *(f.parent for f in files)]))
    created = not dest.exists()
    new_experiment = dest / origin.relative_to(root)
    try:
        for file in sorted(files):
            target = dest / file.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, target)
            _rebase_schema_line(file, target)
        with config_errors():
            load_experiment(new_experiment)
    except BaseException:  # leave nothing behind: remove what this command wrote
        _remove_copies(dest, created)
        raise
    err().print(
        f"created {new_experiment} ({len(files)} file(s)); train it with: vfp train {new_experiment}", markup=False
    )


def _remove_copies(dest: Path, created: bool) -> None:
    """Undo a failed ``vfp new experiment``: DEST itself when it created it, else what it put in it."""
    if created:
        shutil.rmtree(dest, ignore_errors=True)
    elif dest.is_dir():
        for entry in dest.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink()


SCHEMA_LINE = "# yaml-language-server: $schema="


def _rebase_schema_line(source: Path, copy: Path) -> None:
    """Point a copy's editor schema line (a path relative to the file) at the schema the original named."""
    first, newline, rest = copy.read_text(encoding="utf-8").partition("\n")
    reference = first.removeprefix(SCHEMA_LINE).strip()
    if first.startswith(SCHEMA_LINE) and "://" not in reference and not Path(reference).is_absolute():
        schema = (source.parent / reference).resolve().as_posix()
        copy.write_text(f"{SCHEMA_LINE}{schema}{newline}{rest}", encoding="utf-8")


def _common_root(folders: list[Path]) -> tuple[str, ...]:
    parts = [f.resolve().parts for f in folders]
    common: list[str] = []
    for group in zip(*parts, strict=False):
        if len(set(group)) != 1:
            break
        common.append(group[0])
    return tuple(common)


@app.command()
def plugin(
    name: str = typer.Argument(..., help="Distribution name, e.g. vfp-foo."),
    dest: Path = typer.Argument(None, help="Folder to create (default: ./NAME)."),
    kinds: list[str] = typer.Option(
        None,
        "--kind",
        "-k",
        metavar="KIND",
        help="What the plugin provides: trainer, loss, dataloader, model, callback or command; repeatable "
        "(--kind loss --kind callback) or comma-separated. Default: trainer, loss, dataloader, model. A loss "
        "or a model comes with a trainer that uses it.",
    ),
) -> None:
    """Scaffold a third-party plugin package that works at once.

    It has the `vfp` entry point, a light registration module and one implementation module per kind,
    dependencies with version ranges, a packaged experiment (listed by `vfp configs list`) and tests
    that train it a few steps. Install it with `pip install -e DEST[test]`, then run `pytest DEST/tests`.
    """
    import re
    from importlib.metadata import PackageNotFoundError, version

    from vfp._plugins import CONTRACT_VERSION
    from vfp.cli._scaffold import KINDS, ScaffoldNames, plugin_files, resolve_kinds, write_plugin

    if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name):
        raise fail(f"{name!r} is not a valid distribution name: use lowercase words joined by '-'", EXIT_USAGE)
    chosen = [kind.strip() for value in kinds or [] for kind in value.split(",") if kind.strip()]
    unknown = sorted(set(chosen) - set(KINDS))
    if unknown:
        raise fail(f"unknown --kind {', '.join(unknown)}; choose from {', '.join(KINDS)}", EXIT_USAGE)
    dest = dest or Path(name)
    if dest.exists() and any(dest.iterdir()):
        raise fail(f"{dest} exists and is not empty", EXIT_USAGE)
    try:
        il_version: str | None = version("vfp-il-components")
    except PackageNotFoundError:
        il_version = None
    names = ScaffoldNames.from_distribution(name)
    generated, note = resolve_kinds(chosen)
    files = plugin_files(
        names,
        generated,
        contract=CONTRACT_VERSION,
        core_version=CONTRACT_VERSION,
        il_version=il_version,
    )
    write_plugin(dest, files)
    from rich.markup import escape

    made = ", ".join(generated)
    if note:
        err().print(escape(note))
    err().print(
        escape(
            f"created plugin {name} in {dest} ({made}); install it with: pip install -e '{dest}[test]', "
            f"then: vfp train {names.entry}/quickstart"
        )
    )
