"""``vfp serve PATH``: a websocket policy server that openpi's ``openpi-client`` speaks to (``vfp-core[serve]``)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from vfp.cli._common import EXIT_USAGE, err, fail
from vfp.policy import API_KEY_ENV

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command("serve", no_args_is_help=True)(serve)


def serve(
    path: Path = typer.Argument(..., help="A run directory, a checkpoint file or an exported policy folder."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (beyond loopback needs --api-key)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port (0: any free port)."),
    api_key: str | None = typer.Option(
        None, "--api-key", envvar=API_KEY_ENV, help=f"Require `Authorization: Api-Key KEY` (or set {API_KEY_ENV})."
    ),
    checkpoint: str = typer.Option("latest", "--checkpoint", help="latest, best or a step number (run directories)."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, cuda:N or auto."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Integration steps (default: the trainer's)."),
    seed: int | None = typer.Option(
        None, "--seed", help="Seed the policy's generator (requests may also carry a seed)."
    ),
    max_batch: int = typer.Option(256, "--max-batch", min=1, help="Largest batch of observations per request."),
    max_request_mb: float = typer.Option(16.0, "--max-request-mb", min=0.001, help="Largest request frame, in MiB."),
) -> None:
    """Serve a policy over websockets (msgpack-numpy, openpi's protocol) until Ctrl-C; GET /healthz answers OK."""
    try:
        import msgpack  # noqa: F401
        import websockets  # noqa: F401
    except ImportError as exc:
        raise fail(f"vfp serve needs websockets and msgpack ({exc}): pip install 'vfp-core[serve]'") from None
    if not path.exists():
        raise fail(f"{path}: no such run directory, checkpoint or exported policy", EXIT_USAGE)
    from vfp.policy.server import PolicyServer, ServeError, check_bind

    try:
        check_bind(host, api_key)
    except ServeError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    from vfp.policy.loading import load_policy
    from vfp.policy.runtime import PolicyError

    try:
        policy = load_policy(path, device=device, steps=steps, seed=seed, checkpoint=checkpoint)
        server = PolicyServer(
            policy,
            host=host,
            port=port,
            api_key=api_key,
            max_batch=max_batch,
            max_request_bytes=int(max_request_mb * 1024 * 1024),
        )
    except (PolicyError, ServeError) as exc:
        raise fail(str(exc)) from None

    def ready(bound: int) -> None:
        keys = ", ".join(f"{k} {tuple(policy.metadata.features[k].shape)}" for k in policy.metadata.observation_keys)
        auth = "API key required" if api_key else "no API key"
        err().print(
            f"serving {policy!r} on ws://{host}:{bound} ({auth}); observation keys: {keys}",
            highlight=False,
            markup=False,
        )
        err().print("Ctrl-C stops the server", highlight=False)
        if os.environ.get("VFP_SERVE_PORT_FILE"):  # lets scripts and tests find a port chosen with --port 0
            Path(os.environ["VFP_SERVE_PORT_FILE"]).write_text(f"{bound}\n", encoding="utf-8")

    try:
        server.serve_forever(ready)
    except OSError as exc:
        raise fail(f"cannot listen on {host}:{port}: {exc}") from None
    err().print("server stopped", highlight=False)
