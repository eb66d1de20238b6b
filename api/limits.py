"""Searches run under the request timeout (``MLSEARCH_REQUEST_TIMEOUT_S``): in a worker thread, or on the event loop
when one costs less than the hop to a thread (``MLSEARCH_INLINE_SEARCH_MS``)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Hashable
from functools import partial
from typing import ParamSpec, TypeVar

import anyio
import anyio.to_thread

from api.errors import SearchTimeoutError

logger = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")
SMOOTHING = 0.2
"""Weight of the newest duration in a kind of search's running estimate (an exponential moving average)."""
KINDS_KEPT = 64
"""Kinds of search whose estimates are kept (each index version brings its own; the oldest are forgotten)."""


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


class SearchRunner:
    """Runs the service's searches: in a worker thread under the timeout, or on the event loop when that is cheaper.

    Handing a search to a worker thread and its answer back to the event loop wakes two sleeping threads, which
    on a small VM costs 0.1 to 0.35 ms each, the more the longer they slept: as much as a keyword search itself.
    So a search runs on the event loop itself when

    * it names a kind (``inline_key``: the index version and method, say) whose recent searches took at most
      ``inline_ms`` (a running average of their own durations; a kind not yet seen goes to a thread), and
    * no other search is in flight once the requests that have already arrived have had their turn: under
      concurrency, worker threads let searches overlap (encoding releases the GIL, and micro-batching needs
      concurrent callers), so every search then goes to a thread.

    A search on the event loop holds the loop for its duration (at most about ``inline_ms``): a request that
    arrives meanwhile waits that long before it is read. It cannot time out, which a search that short never
    needs. A search that suddenly takes longer raises its kind's average past ``inline_ms``, and the kind goes
    back to threads.

    Args:
        timeout_s: The request timeout for searches in a worker thread.
        inline_ms: The longest recent duration of a kind of search that may run on the event loop (0: never).
    """

    def __init__(self, timeout_s: float, inline_ms: float = 0.0) -> None:
        self.timeout_s = timeout_s
        self.inline_ms = inline_ms
        self.in_flight = 0
        self.inline_runs = 0
        self.thread_runs = 0
        self._recent_ms: dict[Hashable, float] = {}
        self._estimates_lock = threading.Lock()
        self._last_active = time.monotonic()

    def quiet_for(self) -> float:
        """Seconds since the last search ended, 0 while one runs (the drift log waits for a pause; any thread)."""
        return 0.0 if self.in_flight else time.monotonic() - self._last_active

    def runs(self) -> dict[str, int]:
        """How many searches ran where: ``{"loop": …, "thread": …}``."""
        return {"loop": self.inline_runs, "thread": self.thread_runs}

    def recent_ms(self, key: Hashable) -> float | None:
        """The running average duration of that kind of search, None before the first."""
        return self._recent_ms.get(key)

    async def run(
        self, inline_key: Hashable | None, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``func(*args, **kwargs)`` on the event loop or in a worker thread (see the class), and return its value.

        Args:
            inline_key: What kind of search it is (None: always a worker thread, never timed).
            func: The search.
            *args: Its positional arguments.
            **kwargs: Its keyword arguments.

        Raises:
            SearchTimeoutError: A search in a worker thread took longer than the timeout.
        """
        self.in_flight += 1
        self._last_active = time.monotonic()
        try:
            if inline_key is not None and self._may_inline(inline_key):
                await asyncio.sleep(0)  # let requests that have already arrived reach this point and count
                if self.in_flight == 1:
                    self.inline_runs += 1
                    return self._timed(inline_key, func, *args, **kwargs)
            self.thread_runs += 1
            if inline_key is None:
                return await run_with_timeout(self.timeout_s, func, *args, **kwargs)
            return await run_with_timeout(self.timeout_s, partial(self._timed, inline_key, func, *args, **kwargs))
        finally:
            self._last_active = time.monotonic()
            self.in_flight -= 1

    def _may_inline(self, key: Hashable) -> bool:
        recent = self._recent_ms.get(key)
        return self.inline_ms > 0 and recent is not None and recent <= self.inline_ms

    def _timed(self, key: Hashable, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            elapsed = (time.perf_counter() - start) * 1000
            with self._estimates_lock:  # worker threads time their searches too
                recent = self._recent_ms.get(key)
                self._recent_ms[key] = elapsed if recent is None else (1 - SMOOTHING) * recent + SMOOTHING * elapsed
                while len(self._recent_ms) > KINDS_KEPT:  # versions replaced long ago
                    self._recent_ms.pop(next(iter(self._recent_ms)))
