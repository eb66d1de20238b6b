"""Micro-batching of query encoding: concurrent queries that arrive within a few milliseconds share one encode.

Requests call :meth:`QueryBatcher.encode_one` from their own worker threads, and those threads do the encoding
(leader and followers): a request that finds fewer than ``workers`` batches being encoded becomes a leader
and encodes, in its own thread, every query waiting at that moment (its own among them); the others wait for
their embedding, or for a leader's place to free. When concurrent queries have been seen (more than one
waiting, now or in the previous batch) a leader waits up to ``max_wait_ms`` for more, up to ``max_batch``.
A lone query at concurrency 1 is never held back and never changes thread: it is encoded at once by the
request's own thread. (With a separate encoding thread, each query crossed two more thread hand-offs, and on
this 2-core VM waking an idle thread costs 0.1 to 0.35 ms: 0.26 to 0.61 ms a query, paired, at concurrency 1.)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

EncodeBatch = Callable[[Sequence[str]], np.ndarray]


@dataclass
class _Item:
    query: str
    future: Future[np.ndarray]


class QueryBatcher:
    """Encodes concurrent single queries in batches.

    Args:
        encode: Embeds a list of texts (an encoder's ``encode``).
        max_wait_ms: How long a batch may wait for more queries once concurrency is seen (0: never wait,
            batch only what is already queued).
        max_batch: Largest batch.
        workers: Most batches encoded at once, each by the thread of one of its requests.

    Example:
        >>> batcher = QueryBatcher(encoder.encode, max_wait_ms=2)  # doctest: +SKIP
        >>> vector = batcher.encode_one("how do I stop overfitting")  # doctest: +SKIP
    """

    def __init__(self, encode: EncodeBatch, max_wait_ms: float = 2.0, max_batch: int = 32, workers: int = 1) -> None:
        if max_batch < 1 or workers < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and workers must be at least 1 and max_wait_ms at least 0")
        self._encode = encode
        self.max_wait = max_wait_ms / 1000
        self.max_batch = max_batch
        self.workers = workers
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # a leader waiting for more queries
        self._changed = threading.Condition(self._lock)  # a batch done or a leader's place free
        self._pending: deque[_Item] = deque()
        self._leaders = 0
        self._closed = False
        self._concurrent = False
        self.batches = 0
        self.queries = 0
        self.largest = 0

    def encode_one(self, query: str) -> np.ndarray:
        """The embedding of one query, encoded together with the queries that arrive with it."""
        if self._closed:
            return np.asarray(self._encode([query])[0])
        item = _Item(query, Future())
        with self._lock:
            self._pending.append(item)
            self._arrived.notify()
            while not item.future.done() and self._leaders >= self.workers:
                self._changed.wait()
            lead = not item.future.done()
            if lead:
                self._leaders += 1
        if lead:
            try:
                self._lead(item)
            finally:
                with self._lock:
                    self._leaders -= 1
                    self._changed.notify_all()
        return item.future.result()

    def pending(self) -> int:
        """Queries waiting for a leader to take them into a batch."""
        with self._lock:
            return len(self._pending)

    def close(self) -> None:
        """Later calls encode alone in the caller's thread; queries already waiting are still encoded."""
        self._closed = True

    def stats(self) -> dict[str, float]:
        """Batches run, queries encoded, the largest batch and the mean batch size."""
        return {"batches": self.batches, "queries": self.queries, "largest": self.largest,
                "mean": round(self.queries / self.batches, 2) if self.batches else 0.0}

    def _lead(self, own: _Item) -> None:
        """Encode batches of the waiting queries until ``own`` has its embedding (a batch may have taken it)."""
        while not own.future.done():
            batch = self._collect()
            if batch:
                self._run(batch)
                continue
            with self._lock:  # another leader took ``own``: wait for its batch
                while not own.future.done() and not self._pending:
                    self._changed.wait()

    def _collect(self) -> list[_Item]:
        """The waiting queries, after up to ``max_wait`` for more once concurrency is seen (none if none wait)."""
        with self._lock:
            deadline = None
            while 0 < len(self._pending) < self.max_batch:
                if self.max_wait <= 0 or not (self._concurrent or len(self._pending) > 1):
                    break
                if deadline is None:
                    deadline = time.monotonic() + self.max_wait
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._arrived.wait(remaining)
            return [self._pending.popleft() for _ in range(min(len(self._pending), self.max_batch))]

    def _run(self, batch: list[_Item]) -> None:
        texts = list(dict.fromkeys(item.query for item in batch))  # a query asked twice is encoded once
        try:
            vectors = np.asarray(self._encode(texts))
        except BaseException as exc:  # each caller gets the error; the next batch is tried afresh
            for item in batch:
                item.future.set_exception(exc)
        else:
            row = {text: i for i, text in enumerate(texts)}
            for item in batch:
                item.future.set_result(vectors[row[item.query]].copy())
        with self._lock:
            self._concurrent = len(batch) > 1
            self.batches += 1
            self.queries += len(batch)
            self.largest = max(self.largest, len(batch))
            self._changed.notify_all()
