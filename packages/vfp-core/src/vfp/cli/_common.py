"""Helpers shared by the command groups: consoles, exit codes, config loading with clean errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final

import typer

if TYPE_CHECKING:
    from rich.console import Console

from vfp._plugins import PluginError, get_host

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2

_consoles: dict[str, Console] = {}


def _console(stream: str) -> Console:
    """Rich consoles are created on first use: plain and JSON output never import rich.

    Never emoji codes (``file:100: key`` must not show an emoji). Markup stays on for the few styled
    words vfp writes itself; user text (paths, keys, messages) is printed with ``markup=False`` or
    through :func:`rich.markup.escape`, so ``[red]`` in a file name is printed as written.
    """
    if stream not in _consoles:
        from rich.console import Console

        _consoles[stream] = Console(stderr=stream == "err", highlight=False, soft_wrap=True, emoji=False)
    return _consoles[stream]


def out() -> Console:
    return _console("out")


def err() -> Console:
    return _console("err")


def escape(text: object) -> str:
    """``text`` made safe to embed in rich markup: printed as written, ``[red]`` and all."""
    from rich.markup import escape as rich_escape

    return rich_escape(str(text))


def print_json(data: object) -> None:
    import json

    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def fail(message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    """Print ``error: message`` on stderr (the message is plain text, never markup) and return the exit."""
    from rich.markup import escape

    err().print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    return typer.Exit(code)


@contextmanager
def config_errors() -> Iterator[None]:
    """Report config problems on stderr and exit 2; plugin failures exit 1."""
    from vfp.config import ConfigError

    try:
        yield
    except ConfigError as exc:
        err().print(exc.render(), markup=False, emoji=False, highlight=False)
        raise typer.Exit(EXIT_USAGE) from None
    except PluginError as exc:
        raise fail(str(exc)) from None


def complete_config(incomplete: str) -> list[str]:
    """Shell completion for CONFIG arguments: packaged experiment names and YAML files."""
    from vfp.config import ConfigCatalog

    try:
        names = [entry.name for entry in ConfigCatalog(get_host()).experiments()]
    except Exception:  # completion must never crash the shell
        names = []
    files = [str(p) for p in Path(".").glob(incomplete + "*") if p.suffix in (".yaml", ".yml") or p.is_dir()]
    return sorted(n for n in names if n.startswith(incomplete)) + files


def write_text_or_stdout(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        err().print(f"wrote {output}", markup=False)
