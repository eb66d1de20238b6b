"""Background tasks of the service: the first index load, and the watcher that follows index swaps."""

from __future__ import annotations

import logging

import anyio
import anyio.to_thread

from api.metrics import ServiceMetrics
from api.state import ServiceState
from mlsearch.errors import MlsearchError

logger = logging.getLogger(__name__)


async def load_initial(state: ServiceState) -> None:
    """Load the index once at start-up; on failure ``/ready`` says why and the watcher keeps trying."""
    try:
        await state.reload()
    except MlsearchError as exc:
        logger.error("no index loaded: %s", exc)


async def watch_index(state: ServiceState, interval_s: float, metrics: ServiceMetrics | None = None) -> None:
    """Poll where the index directory points every ``interval_s`` seconds and reload when it moves.

    A target that failed to load is not retried until the directory points somewhere else again.
    """
    while True:
        await anyio.sleep(interval_s)
        try:
            target = await anyio.to_thread.run_sync(state.target)
            if state.is_current(target) or target == state.failed_target:
                continue
            outcome = await state.reload()
            if outcome.reloaded:
                logger.info("index watcher: now serving version %s", outcome.version)
                if metrics is not None:
                    metrics.reloads.labels("reloaded").inc()
        except MlsearchError as exc:
            if metrics is not None:
                metrics.reloads.labels("failed").inc()
            logger.warning("index watcher: keeping the current index: %s", exc)
        except Exception:  # the watcher must outlive any surprise; the service keeps its index
            logger.exception("index watcher: unexpected error")
