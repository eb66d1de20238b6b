"""The document updater inside the service: started and stopped by the lifespan, reloading after each update.

Writes go through :class:`~indexing.updates.DocumentUpdater` (durable store, serialised, coalesced). When an
update publishes a version, the service reloads it at once (rather than waiting for the index watcher), so a
write is searchable as soon as its version is published.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from api.errors import NotReadyError
from api.state import ServiceState
from indexing.backends.configs import build_config
from indexing.updates import DocumentUpdater, UpdateSummary
from mlsearch.errors import MlsearchError

logger = logging.getLogger(__name__)


def start_documents(app: FastAPI) -> None:
    """Open the document store and start the updater (it applies writes stored before a restart)."""
    state: ServiceState = app.state.service
    loop = asyncio.get_running_loop()

    def reload_after(summary: UpdateSummary) -> None:
        future = asyncio.run_coroutine_threadsafe(state.reload(), loop)
        try:
            future.result(timeout=120)
        except MlsearchError as exc:
            logger.error("cannot load updated index version %s: %s", summary.version, exc)
        except Exception:
            logger.exception("reload after update %s failed", summary.version)

    try:
        updater = DocumentUpdater(
            build_config(state.settings), lambda: state.require_searcher().encoder,
            coalesce_s=state.settings.update_coalesce_s, on_published=reload_after,
        )
    except Exception as exc:  # an unwritable state directory must not stop searches
        app.state.documents = None
        app.state.documents_unavailable = f"the document store cannot be opened: {exc}"
        logger.error("%s; document writes are disabled", app.state.documents_unavailable)
        return
    app.state.documents = updater
    updater.start()


async def stop_documents(app: FastAPI) -> None:
    """Stop the updater after the update in progress (stored writes are applied on the next start).

    The updater is stopped from a worker thread, so that the event loop stays free to run the reload that an update
    finishing meanwhile waits for (stopped on the loop itself, the two waited for each other until the updater's
    30 s join timeout).
    """
    updater: DocumentUpdater | None = getattr(app.state, "documents", None)
    if updater is not None:
        await asyncio.to_thread(updater.close)
        app.state.documents = None


async def get_updater(request: Request) -> DocumentUpdater:
    """The app's document updater.

    Raises:
        NotReadyError: The document store could not be opened, or the app has not started.
    """
    updater: DocumentUpdater | None = getattr(request.app.state, "documents", None)
    if updater is None:
        reason = getattr(request.app.state, "documents_unavailable", "the service is starting")
        raise NotReadyError(f"document writes are unavailable: {reason}")
    return updater


UpdaterDep = Annotated[DocumentUpdater, Depends(get_updater)]
