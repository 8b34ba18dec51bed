"""``affectfusion serve api|dashboard RUN``: the REST API (uvicorn) or the web dashboard for a trained run.

Both bind 127.0.0.1 unless ``--host`` says otherwise: a model server on every interface is a
choice the user makes, not a default.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from affectfusion.errors import AffectFusionError

serve_app = typer.Typer(help="Serve a trained run: REST API or web dashboard.", no_args_is_help=True)
err_console = Console(stderr=True)

RunArg = Annotated[
    Path,
    typer.Argument(
        help="Run directory written by `affectfusion train` (a fusion run, a specialists output folder "
        "or a vision-language run)"
    ),
]


def _check_bind(host: str, port: int) -> None:
    """Refuse a port out of range; warn when the server will be reachable from other machines."""
    if not 0 <= port <= 65535:
        raise AffectFusionError(f"--port must be between 0 and 65535, got {port}")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        err_console.print(
            f"[yellow]warning:[/] binding {host}: the server is reachable from other machines; "
            "it has no authentication",
            highlight=False,
        )


@serve_app.command("api")
def api_command(
    run: RunArg,
    host: Annotated[str, typer.Option(help="Interface to bind (default: loopback only)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    max_upload_mb: Annotated[float, typer.Option(help="Largest accepted file, in MB (images: at most 50)")] = 50,
    max_batch: Annotated[int, typer.Option(help="Most items in one batch request")] = 64,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """REST API: GET /health, GET /info, POST /predict, /predict/batch, /predict/batch/files; docs at /docs."""
    import uvicorn

    from affectfusion.serve.api import create_app
    from affectfusion.serve.predictor import load_predictor

    _check_bind(host, port)
    if max_upload_mb <= 0 or max_batch < 1:
        raise AffectFusionError("--max-upload-mb must be > 0 and --max-batch >= 1")
    predictor = load_predictor(run)  # a wrong folder is a one-line error here, before uvicorn starts
    app = create_app(predictor, max_upload_mb=max_upload_mb, max_batch=max_batch)
    err_console.print(
        f"serving {predictor.name} ({run}) at http://{host}:{port} (docs: /docs); "
        f"model loaded in {predictor.load_seconds:.2f} s",
        highlight=False,
    )
    # One process: the model is loaded once and calls into it are serialised (see serve/api.py).
    uvicorn.run(app, host=host, port=port, log_level=log_level, workers=1)


@serve_app.command("dashboard")
def dashboard_command(
    run: RunArg,
    host: Annotated[str, typer.Option(help="Interface to bind (default: loopback only)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8501,
) -> None:
    """Web dashboard: single input, batch with CSV export, model documentation."""
    from affectfusion.serve.dashboard import launch

    _check_bind(host, port)
    launch(run, host, port)
