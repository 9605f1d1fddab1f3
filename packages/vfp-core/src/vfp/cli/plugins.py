"""``vfp plugins``: what is installed, and whether it works."""

from __future__ import annotations

import typer

from vfp._plugins import get_host
from vfp.cli._common import out, print_json

app = typer.Typer(help="Inspect installed vfp plugins.", no_args_is_help=True)

_STATUS_STYLE = {"ok": "green", "failed": "bold red", "disabled": "yellow"}


@app.command("list")
def list_plugins(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
) -> None:
    """List every installed plugin with its status and the components it registered."""
    host = get_host()
    if as_json:
        print_json([record.as_json() for record in host.records])
        return
    from rich.table import Table

    table = Table(title="vfp plugins", show_lines=True)
    for column in ("plugin", "distribution", "version", "status", "components"):
        table.add_column(column, overflow="fold")
    for record in host.records:
        by_kind: dict[str, list[str]] = {}
        for spec in record.components:
            by_kind.setdefault(str(spec.kind), []).append(spec.name)
        components = "\n".join(f"{kind}: {', '.join(names)}" for kind, names in sorted(by_kind.items()))
        if record.config_dirs:
            components += ("\n" if components else "") + f"configs: {len(record.config_dirs)} folder(s)"
        status = f"[{_STATUS_STYLE[record.status]}]{record.status}[/]"
        if record.reason and record.status != "ok":
            status += f"\n{record.reason}"
        table.add_row(record.name, record.distribution, record.version, status, components or "-")
    out().print(table)
    conflicts = host.registry.conflicts
    for kind, name in sorted(conflicts, key=lambda k: (str(k[0]), k[1])):
        out().print(f"[bold red]conflict:[/] {host.registry.conflict_message(kind, name)}")
