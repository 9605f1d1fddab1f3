"""``vfp configs``: packaged experiments shipped by plugins."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from vfp._plugins import get_host
from vfp.cli._common import escape, out, print_json

if TYPE_CHECKING:
    from vfp.config import PackagedConfig

app = typer.Typer(help="Packaged experiment configs from installed plugins.", no_args_is_help=True)


def _description(entry: PackagedConfig) -> str:
    from vfp.config import ConfigError
    from vfp.config._yaml import load_yaml_file

    try:
        data = load_yaml_file(entry.path).data
    except ConfigError:
        return "(unreadable)"
    value = data.get("description", "") if isinstance(data, dict) else ""
    return str(value).strip().splitlines()[0] if value else ""


@app.command("list")
def list_configs(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
    models: bool = typer.Option(False, "--models", help="List model-architecture configs instead."),
) -> None:
    """List packaged experiments by name (usable wherever a command takes a config)."""
    from vfp.config import ConfigCatalog

    catalog = ConfigCatalog(get_host())
    entries = [e for e in catalog.entries.values() if (e.is_model if models else e.is_experiment)]
    if as_json:
        rows = [
            {
                "name": e.name,
                "distribution": e.distribution,
                "plugin": e.plugin,
                "path": str(e.path),
                "description": _description(e),
            }
            for e in entries
        ]
        print_json(rows)
        return
    from rich.table import Table

    table = Table(title="packaged model configs" if models else "packaged experiments")
    for column in ("name", "distribution", "description"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        table.add_row(escape(entry.name), escape(entry.distribution), escape(_description(entry)))
    out().print(table)
