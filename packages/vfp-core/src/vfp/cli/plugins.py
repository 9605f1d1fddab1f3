"""``vfp plugins``: what is installed, whether it works, what it costs to import, and what clashes."""

from __future__ import annotations

import typer

from vfp._plugins import IMPORT_THRESHOLD_ENV, PluginRecord, get_host, import_threshold
from vfp.cli._common import escape, out, print_json

app = typer.Typer(help="Inspect installed vfp plugins.", no_args_is_help=True)

_STATUS_STYLE = {"ok": "green", "conflict": "bold red", "failed": "bold red", "disabled": "yellow"}


def _import_cell(record: PluginRecord, threshold: float) -> str:
    if record.import_seconds is None:
        return "-"
    text = f"{record.import_seconds:.3f} s"
    if record.imports_torch:
        return f"[bold red]{text}\nimports torch[/]"
    if record.import_seconds > threshold:
        return f"[bold red]{text}[/]"
    if record.imports_torch is None:
        text += "\n[dim](torch already loaded)[/]"
    return text


def _status_cell(record: PluginRecord) -> str:
    status = f"[{_STATUS_STYLE[record.status]}]{record.status}[/]"
    if record.status in ("failed", "disabled") and record.reason:
        status += f"\n{escape(record.reason)}"
    for conflict in record.conflicts:
        others = ", ".join(repr(p) for p in conflict.plugins if p != record.name)
        status += escape(f"\n{conflict.kind} {conflict.name!r} also claimed by {others}")
    for problem in record.problems:
        status += f"\n[yellow]{escape(problem.split(':', 1)[0])}[/]"
    return status


@app.command("list")
def list_plugins(
    as_json: bool = typer.Option(
        False,
        "--json",
        help='Print JSON instead of a table: {"plugins": [...], "conflicts": [...], "import_threshold_seconds": N}.',
    ),
) -> None:
    """List every installed plugin: status, import time, components, and names claimed twice.

    A plugin whose entry-point module imports torch, or takes longer than VFP_PLUGIN_IMPORT_THRESHOLD
    seconds (default 0.5) to import, is flagged: every vfp command pays for it.
    """
    host = get_host()
    threshold = import_threshold()
    conflicts = host.conflicts()
    if as_json:
        print_json(
            {
                "plugins": [record.as_json() for record in host.records],
                "conflicts": [conflict.as_json() for conflict in conflicts],
                "import_threshold_seconds": threshold,
            }
        )
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="vfp plugins", show_lines=True)
    for column in ("plugin", "distribution", "version", "status", "import", "components"):
        table.add_column(column, overflow="fold")
    for record in host.records:
        by_kind: dict[str, list[str]] = {}
        for spec in record.components:
            by_kind.setdefault(str(spec.kind), []).append(spec.name)
        components = "\n".join(f"{kind}: {', '.join(names)}" for kind, names in sorted(by_kind.items()))
        if record.config_dirs:
            components += ("\n" if components else "") + f"configs: {len(record.config_dirs)} folder(s)"
        table.add_row(
            escape(record.name),
            escape(record.distribution),
            escape(record.version),
            _status_cell(record),
            _import_cell(record, threshold),
            escape(components or "-"),
        )
    out().print(table)
    for conflict in conflicts:
        out().print(f"[bold red]conflict:[/] {escape(conflict.message())}")
    for record in host.records:
        for problem in record.problems:
            out().print(f"[yellow]problem:[/] plugin {escape(repr(record.name))} {escape(problem)}")
    if any(r.problems for r in host.records):
        out().print(f"(import-time threshold {threshold:g} s; change it with {IMPORT_THRESHOLD_ENV})")
