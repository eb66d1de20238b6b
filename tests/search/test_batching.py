"""Micro-batching of query encoding: concurrent queries share a batch, results equal unbatched ones."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from indexing.backends.configs import search_config
from mlsearch.settings import Settings
from search.batching import QueryBatcher
from search.searcher import Searcher
from tests.fakes import CountingEncoder, HashingEncoder

QUERIES = [f"query number {i} about dropout and learning rate {i % 3}" for i in range(24)]


class SlowEncoder(CountingEncoder):
    """The counting fake encoder (each call's batch in ``calls``), blocking the first call until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        vectors = super().encode(texts, batch_size, show_progress)  # recorded first: the test waits to see it
        if len(self.calls) == 1:
            self.release.wait(5)
        return vectors


def test_concurrent_queries_are_encoded_in_batches_with_the_same_results() -> None:
    encoder = SlowEncoder()
    batcher = QueryBatcher(encoder.encode, max_wait_ms=50, max_batch=32, workers=1)
    with ThreadPoolExecutor(max_workers=len(QUERIES)) as pool:
        first = pool.submit(batcher.encode_one, QUERIES[0])  # its thread leads, and holds the only leader's place
        while not encoder.calls:
            threading.Event().wait(0.001)
        rest = [pool.submit(batcher.encode_one, q) for q in QUERIES[1:]]
        while batcher.pending() < len(rest):  # every other query is queued behind the first
            threading.Event().wait(0.001)
        encoder.release.set()
        vectors = [first.result(5)] + [f.result(5) for f in rest]
    assert encoder.calls[0] == [QUERIES[0]]
    assert sum(len(c) for c in encoder.calls) == len(QUERIES)
    assert max(len(c) for c in encoder.calls[1:]) == len(QUERIES) - 1  # one batch for the queued queries
    expected = HashingEncoder().encode(QUERIES)
    np.testing.assert_allclose(np.stack(vectors), expected, atol=1e-6)
    assert batcher.stats()["largest"] == len(QUERIES) - 1
    batcher.close()


def test_max_batch_bounds_a_batch_and_duplicates_are_encoded_once() -> None:
    encoder = SlowEncoder()
    batcher = QueryBatcher(encoder.encode, max_wait_ms=0, max_batch=5)
    with ThreadPoolExecutor(max_workers=16) as pool:
        first = pool.submit(batcher.encode_one, "hold")
        while not encoder.calls:
            threading.Event().wait(0.001)
        asked = ["same query"] * 4 + QUERIES[:8]
        futures = [pool.submit(batcher.encode_one, q) for q in asked]
        while batcher.pending() < len(asked):
            threading.Event().wait(0.001)
        encoder.release.set()
        results = [f.result(5) for f in futures]
        first.result(5)
    assert all(len(set(c)) == len(c) for c in encoder.calls)  # a batch never encodes a text twice
    assert batcher.largest <= 5
    np.testing.assert_allclose(np.stack(results), HashingEncoder().encode(asked), atol=1e-6)
    batcher.close()


def test_a_lone_query_is_not_held_back_and_errors_reach_the_caller() -> None:
    calls: list[list[str]] = []

    def encode(texts: Sequence[str]) -> np.ndarray:
        calls.append(list(texts))
        if "boom" in texts:
            raise RuntimeError("encoder failed")
        return HashingEncoder().encode(texts)

    batcher = QueryBatcher(encode, max_wait_ms=10_000)  # a wait would time the test out
    for query in QUERIES[:3]:
        np.testing.assert_allclose(batcher.encode_one(query), HashingEncoder().encode([query])[0], atol=1e-6)
    assert calls == [[q] for q in QUERIES[:3]]
    with pytest.raises(RuntimeError, match="encoder failed"):
        batcher.encode_one("boom")
    assert batcher.encode_one("still alive").shape == (64,)
    batcher.close()
    assert batcher.encode_one("after close").shape == (64,)  # encoded in the caller's thread


def test_searcher_with_a_batcher_answers_as_without(built_index: Path, settings: Settings) -> None:
    encoder = HashingEncoder()
    plain = Searcher.open(built_index, search_config(settings.model_copy(update={"query_cache_size": 0})),
                          encoder=encoder)
    batched = Searcher.open(built_index, search_config(settings.model_copy(update={"query_cache_size": 0})),
                            encoder=encoder)
    batched.batcher = QueryBatcher(encoder.encode, max_wait_ms=5, workers=2)
    queries = ["dropout", "population stability index", "faiss vectors", "learning rate"] * 4
    with ThreadPoolExecutor(max_workers=16) as pool:
        got = list(pool.map(lambda q: batched.search(q, k=3, method="hybrid"), queries))
    for query, result in zip(queries, got, strict=True):
        want = plain.search(query, k=3, method="hybrid")
        assert [(h.id, h.score) for h in result.hits] == [(h.id, h.score) for h in want.hits]
    assert batched.batcher.queries == len(queries)
    batched.batcher.close()


def test_a_lone_query_is_encoded_in_the_callers_own_thread() -> None:
    threads: list[str] = []

    def encode(texts: Sequence[str]) -> np.ndarray:
        threads.append(threading.current_thread().name)
        return HashingEncoder().encode(texts)

    batcher = QueryBatcher(encode, max_wait_ms=5)
    batcher.encode_one("dropout")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="request") as pool:
        pool.submit(batcher.encode_one, "learning rate").result(5)
    assert threads == [threading.current_thread().name, "request_0"]
    assert batcher.stats() == {"batches": 2, "queries": 2, "largest": 1, "mean": 1.0}


def test_workers_bound_the_batches_encoded_at_once_and_every_waiting_query_is_answered() -> None:
    running = 0
    most = 0
    lock = threading.Lock()
    gate = threading.Event()

    def encode(texts: Sequence[str]) -> np.ndarray:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        gate.wait(5)
        with lock:
            running -= 1
        return HashingEncoder().encode(texts)

    batcher = QueryBatcher(encode, max_wait_ms=1, max_batch=4, workers=2)
    with ThreadPoolExecutor(max_workers=len(QUERIES)) as pool:
        futures = [pool.submit(batcher.encode_one, q) for q in QUERIES]
        while running < 2:  # two leaders encode; every other request waits for a place or its embedding
            threading.Event().wait(0.001)
        threading.Event().wait(0.05)
        assert running == 2
        gate.set()
        results = [f.result(5) for f in futures]
    assert most == 2 and batcher.largest <= 4 and batcher.queries == len(QUERIES)
    np.testing.assert_allclose(np.stack(results), HashingEncoder().encode(QUERIES), atol=1e-6)
