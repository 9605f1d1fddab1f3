"""Entry point of the ``vfp`` command: global options, plugin discovery, command groups."""

from __future__ import annotations

import gc
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import typer

from vfp._plugins import PluginError, PluginInterrupted, PluginWarning, get_host
from vfp.cli import config, configs, export, new, plot, plugins, runs, serve, sweep, train
from vfp.cli._common import err, fail

DISABLE_OPTION = "--disable-plugin"


def _disabled_from_argv(argv: Sequence[str]) -> list[str]:
    """Plugins are discovered before typer parses options, so ``--disable-plugin`` is read here."""
    names: list[str] = []
    for i, arg in enumerate(argv):
        if arg == DISABLE_OPTION and i + 1 < len(argv):
            names.append(argv[i + 1])
        elif arg.startswith(DISABLE_OPTION + "="):
            names.append(arg.split("=", 1)[1])
    return [n for part in names for n in part.split(",") if n]


def _version_callback(value: bool) -> None:
    if value:
        from vfp import __version__

        typer.echo(f"vfp-core {__version__}")
        for record in get_host().records:
            if record.distribution != "vfp-core":
                typer.echo(f"{record.distribution} {record.version} ({record.status})")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show versions and exit."
    ),
    disable_plugin: list[str] = typer.Option(
        None,
        DISABLE_OPTION,
        metavar="NAME",
        help="Skip a plugin (entry-point or distribution name) before it is imported; repeatable. "
        "Same as VFP_DISABLE_PLUGINS=a,b.",
    ),
) -> None:
    """vfp: train imitation-learning policies (flow matching, VFP) from YAML experiments.

    Components come from installed plugins: `vfp plugins list` shows them.
    """


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="vfp",
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"]},
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
    )
    app.callback()(_root)
    app.add_typer(plugins.app, name="plugins")
    app.add_typer(config.app, name="config")
    app.add_typer(configs.app, name="configs")
    app.add_typer(new.app, name="new")
    app.add_typer(runs.app, name="runs")
    train.register(app)
    plot.register(app)
    sweep.register(app)
    export.register(app)
    serve.register(app)
    get_host().add_cli_commands(app)
    return app


def _show_warning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    from rich.markup import escape

    prefix = "warning" if not issubclass(category, PluginWarning) else "plugin warning"
    err().print(f"[yellow]{prefix}:[/] {escape(str(message))}", markup=True, highlight=False)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``vfp`` command line."""
    args = list(sys.argv[1:] if argv is None else argv)
    warnings.showwarning = _show_warning
    as_command = argv is None
    if as_command:
        # Start-up (vfp's modules, then every plugin's module and config models) makes many objects that
        # live as long as the process and little garbage: no collection scans them meanwhile, and
        # gc.freeze() keeps them out of every later one, the collections at exit included. Only for
        # the `vfp` command itself, not when main() is called in a long-lived process.
        gc.disable()
    try:
        get_host(disabled=_disabled_from_argv(args))
        app = build_app()
    except PluginInterrupted as exc:  # Ctrl-C during a plugin's import: stop, no traceback
        raise SystemExit(fail(str(exc), 130).exit_code) from None
    except PluginError as exc:
        raise SystemExit(fail(str(exc)).exit_code) from None
    finally:
        if as_command:
            gc.freeze()
            gc.enable()
    app(args=args, prog_name="vfp")
