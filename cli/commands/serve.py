"""``mlsearch serve``: run the search service with uvicorn."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.commands import common
from cli.commands.common import cli_errors, make_settings


@cli_errors
def serve(
    index_dir: Annotated[Path | None, typer.Option("--index-dir", help="The index directory to serve.")] = None,
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on (127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port to listen on (8000).")] = None,
    watch: Annotated[
        bool | None, typer.Option("--watch/--no-watch", help="Reload when the index is rebuilt (on by default).")
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
    drift_reference: Annotated[
        Path | None, typer.Option("--drift-reference", help="Reference queries for drift monitoring (one a line; "
                                  "the first answered queries by default).")
    ] = None,
) -> None:
    """Serve POST /search, POST /compare, /health, /ready, /index, /metrics and POST /admin/reload.

    The model and index load once, when the service starts; open http://HOST:PORT/docs for the API. On SIGTERM
    or Ctrl-C the server stops accepting connections and gives in-flight requests MLSEARCH_SHUTDOWN_GRACE_S
    seconds to finish.
    """
    import uvicorn

    from api.app import create_app
    from api.state import searcher_factory

    settings = make_settings(index_dir=index_dir, host=host, port=port, watch_index=watch,
                             drift_reference_file=drift_reference)
    if settings.drift_reference_file is not None:
        from drift.reference import read_queries

        read_queries(settings.drift_reference_file)  # a missing or empty file: one line and exit 1
    if settings.serve_torch_threads:
        import torch

        torch.set_num_threads(settings.serve_torch_threads)
    threads = settings.encoder_threads or settings.serve_torch_threads  # OpenVINO / ONNX Runtime get as many
    factory = searcher_factory(lambda name: common.get_encoder(settings, name, threads=threads))
    app = create_app(settings, searcher_factory=factory)
    typer.echo(f"serving {settings.index_dir} on http://{settings.host}:{settings.port} (docs at /docs)", err=True)
    uvicorn.run(
        app, host=settings.host, port=settings.port, log_level=log_level.lower(), log_config=log_config(),
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )


def log_config() -> dict[str, object]:
    """uvicorn's logging configuration, with the request id on every line (``-`` outside a request)."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["default"]["fmt"] = "%(levelprefix)s [%(request_id)s] %(name)s: %(message)s"
    config["formatters"]["access"]["fmt"] = (
        '%(levelprefix)s [%(request_id)s] %(client_addr)s - "%(request_line)s" %(status_code)s'
    )
    config["root"] = {"handlers": ["default"], "level": "INFO"}
    return config
