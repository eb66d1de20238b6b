"""Searches run in a worker thread under the request timeout (``MLSEARCH_REQUEST_TIMEOUT_S``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import anyio
import anyio.to_thread

from api.errors import SearchTimeoutError

logger = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")


async def run_with_timeout(timeout_s: float, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``func`` in a worker thread and wait at most ``timeout_s`` seconds for it.

    A thread cannot be stopped: past the timeout the request answers at once and the thread finishes its
    work in the background, its result dropped.

    Raises:
        SearchTimeoutError: ``func`` did not finish in time.
    """
    try:
        with anyio.fail_after(timeout_s):
            return await anyio.to_thread.run_sync(lambda: func(*args, **kwargs), abandon_on_cancel=True)
    except TimeoutError:
        logger.warning("%s took longer than %.3g s; answered 503", getattr(func, "__name__", "search"), timeout_s)
        raise SearchTimeoutError(
            f"the search took longer than {timeout_s:g} s (MLSEARCH_REQUEST_TIMEOUT_S); try again or ask for "
            "fewer results"
        ) from None
