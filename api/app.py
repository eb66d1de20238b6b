"""The FastAPI app: routers, error handlers, metrics, and the lifespan that loads and watches the index.

Run it with ``mlsearch serve``, or build one in a test with :func:`create_app` and an injected
``searcher_factory`` (for example one over a tiny index with a fake encoder).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api.deps import READ_KEY_RESPONSES, require_reader
from api.documents import start_documents, stop_documents
from api.drift import start_drift, stop_drift
from api.errors import install_error_handlers
from api.metrics import ServiceMetrics
from api.middleware import install_middleware
from api.openapi import install_openapi
from api.routes import admin, compare, documents, health, index, metrics, search, tags
from api.routes import drift as drift_routes
from api.state import SearcherFactory, ServiceState, searcher_factory
from api.watcher import load_initial, watch_index
from mlsearch.settings import Settings, get_settings

logger = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the index in the background (``/ready`` is 503 until then) and watch it for swaps."""
    state: ServiceState = app.state.service
    settings = state.settings
    state.start()
    tasks = [asyncio.create_task(load_initial(state), name="mlsearch-load")]
    drift_task = start_drift(app)
    start_documents(app)
    if drift_task is not None:
        tasks.append(drift_task)
    if settings.watch_index:
        tasks.append(asyncio.create_task(
            watch_index(state, settings.watch_interval_s, app.state.metrics), name="mlsearch-watch"
        ))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        stop_drift(app)
        await stop_documents(app)


def create_app(
    settings: Settings | None = None,
    searcher_factory: SearcherFactory | None = None,
    static_dir: Path | None = STATIC_DIR,
) -> FastAPI:
    """Create the search service.

    Args:
        settings: The settings (read from ``MLSEARCH_*`` environment variables by default).
        searcher_factory: Opens the current index version, given the settings and the previous searcher
            (:func:`api.state.searcher_factory` by default, which loads the index's model).
        static_dir: Files served under ``/static`` (its ``index.html`` at ``/``); ``api/static`` by default.

    Returns:
        The app. Its index loads when the app starts (in its lifespan), off the event loop.
    """
    settings = settings or get_settings()
    app = FastAPI(
        title="mlsearch",
        summary="Semantic and keyword search over a machine-learning knowledge corpus.",
        version="0.1.0",
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,
    )
    app.state.service = ServiceState(settings=settings, factory=searcher_factory or _default_factory())
    app.state.metrics = ServiceMetrics()
    app.state.metrics.count_search_runs(app.state.service.runner.runs)
    app.state.max_body_bytes = settings.max_body_bytes
    install_error_handlers(app)
    install_middleware(app, settings, app.state.metrics)
    install_openapi(app)
    for module in (search, compare, health, index, admin, tags):
        app.include_router(module.router)
    for module in (metrics, drift_routes):  # traffic figures: behind MLSEARCH_READ_API_KEY when it is set
        app.include_router(module.router, dependencies=[Depends(require_reader)], responses=READ_KEY_RESPONSES)
    app.include_router(documents.make_router(settings.max_upload_bytes))
    if static_dir is not None:
        mount_static(app, static_dir)
    return app


def _default_factory() -> SearcherFactory:
    return searcher_factory()


def mount_static(app: FastAPI, directory: Path) -> None:
    """Serve ``api/static`` under ``/static``, and its ``index.html`` (when there is one) at ``/``."""
    if not directory.is_dir():
        return
    app.mount("/static", StaticFiles(directory=directory), name="static")
    page = directory / "index.html"
    if page.is_file():

        @app.get("/", include_in_schema=False)
        async def home() -> FileResponse:
            return FileResponse(page)
