"""``vfp config``: validate, show and describe experiment configs without training."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from vfp._plugins import get_host
from vfp.cli._common import complete_config, config_errors, err, escape, write_text_or_stdout

app = typer.Typer(help="Validate, show and describe experiment configs.", no_args_is_help=True)

CONFIG_HELP = "Experiment YAML file, or the name of a packaged experiment (see `vfp configs list`)."
OVERRIDES_HELP = (
    "Overrides, applied last: KEY.PATH=VALUE (read as YAML: 1e-4, [1, 2], true) or ~KEY.PATH to delete a key; "
    "see docs/configs.md."
)


@app.command()
def validate(
    config: str = typer.Argument(..., help=CONFIG_HELP, autocompletion=complete_config),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP, show_default=False),
) -> None:
    """Check a config against the installed plugins; exit 0 if valid, 2 with every problem if not."""
    from vfp.config import load_experiment

    with config_errors():
        loaded = load_experiment(config, overrides or ())
    err().print(f"[green]valid:[/] {escape(loaded.source)}")


@app.command()
def show(
    config: str = typer.Argument(..., help=CONFIG_HELP, autocompletion=complete_config),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP, show_default=False),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of YAML."),
) -> None:
    """Print the fully resolved config: extends and references applied, defaults filled in."""
    import yaml

    from vfp.config import load_experiment

    with config_errors():
        loaded = load_experiment(config, overrides or ())
    resolved = loaded.resolved()
    if as_json:
        write_text_or_stdout(json.dumps(resolved, indent=2), None)
    else:
        write_text_or_stdout(f"# resolved from {loaded.source}\n" + yaml.safe_dump(resolved, sort_keys=False), None)


@app.command()
def schema(
    output: Path = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
) -> None:
    """Write the JSON Schema of experiment configs, covering every installed plugin's components."""
    from vfp.config import experiment_json_schema

    text = json.dumps(experiment_json_schema(get_host().schema_registry), indent=2)
    write_text_or_stdout(text, output)
