"""Micro-batching of query encoding: concurrent queries that arrive within a few milliseconds share one encode.

Requests call :meth:`QueryBatcher.encode_one` from their own worker threads. The batcher's encoding threads
take every query waiting in the queue at once; when they have seen concurrent queries (the queue held more
than one, now or in the previous batch) they wait up to ``max_wait_ms`` for more, up to ``max_batch``. A lone
query at concurrency 1 is never held back: it is encoded as soon as an encoding thread is free.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
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


_STOP = object()


class QueryBatcher:
    """Encodes concurrent single queries in batches.

    Args:
        encode: Embeds a list of texts (an encoder's ``encode``).
        max_wait_ms: How long a batch may wait for more queries once concurrency is seen (0: never wait,
            batch only what is already queued).
        max_batch: Largest batch.
        workers: Encoding threads (each runs one batch at a time).

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
        self._queue: queue.SimpleQueue[_Item | object] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        self._closed = False
        self._concurrent = False
        self.batches = 0
        self.queries = 0
        self.largest = 0

    def encode_one(self, query: str) -> np.ndarray:
        """The embedding of one query, encoded together with the queries that arrive with it."""
        if self._closed:
            return np.asarray(self._encode([query])[0])
        if not self._threads:
            self._start()
        item = _Item(query, Future())
        self._queue.put(item)
        return item.future.result()

    def close(self) -> None:
        """Stop the encoding threads once the queued queries are done; later calls encode in the caller."""
        self._closed = True
        for _ in self._threads:
            self._queue.put(_STOP)

    def stats(self) -> dict[str, float]:
        """Batches run, queries encoded, the largest batch and the mean batch size."""
        return {"batches": self.batches, "queries": self.queries, "largest": self.largest,
                "mean": round(self.queries / self.batches, 2) if self.batches else 0.0}

    def _start(self) -> None:
        with self._start_lock:
            if self._threads:
                return
            for i in range(self.workers):
                thread = threading.Thread(target=self._loop, name=f"query-batcher-{i}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _collect(self, first: _Item) -> tuple[list[_Item], bool]:
        """``first`` and the queries queued behind it; True when a stop came with them."""
        batch = [first]
        deadline = None
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                if self.max_wait <= 0 or not (self._concurrent or len(batch) > 1):
                    break
                if deadline is None:
                    deadline = time.monotonic() + self.max_wait
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if item is _STOP:
                return batch, True
            assert isinstance(item, _Item)
            batch.append(item)
        return batch, False

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            assert isinstance(first, _Item)
            batch, stop = self._collect(first)
            self._concurrent = len(batch) > 1
            self._run(batch)
            if stop:
                return

    def _run(self, batch: list[_Item]) -> None:
        texts = list(dict.fromkeys(item.query for item in batch))  # a query asked twice is encoded once
        try:
            vectors = np.asarray(self._encode(texts))
        except BaseException as exc:  # the callers get the error, the thread lives on
            for item in batch:
                item.future.set_exception(exc)
            return
        row = {text: i for i, text in enumerate(texts)}
        for item in batch:
            item.future.set_result(vectors[row[item.query]].copy())
        self.batches += 1
        self.queries += len(batch)
        self.largest = max(self.largest, len(batch))
