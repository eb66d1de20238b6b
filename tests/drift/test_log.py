"""The query log: bounded, persistent, text modes, corruption moved aside, and the background writer."""

from __future__ import annotations

import math
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import pytest

from drift.features import QueryObservation, observe_query
from drift.log import LogWriter, QueryLog
from indexing.backends.configs import search_config
from mlsearch.errors import DriftError
from mlsearch.settings import Settings
from search.searcher import Searcher
from tests.fakes import CountingEncoder, HashingEncoder

Make = Callable[..., list[QueryObservation]]


def test_rows_round_trip_and_survive_a_restart(tmp_path: Path, make_observations: Make) -> None:
    path = tmp_path / "drift" / "queries.sqlite"
    log = QueryLog(path)
    observations = make_observations(5)
    observations[0].unknown_share = math.nan
    ids = log.append(observations)
    assert ids == [1, 2, 3, 4, 5] and observations[4].id == 5
    log.close()

    reopened = QueryLog(path)
    rows = reopened.rows()
    assert [r.id for r in rows] == ids
    assert np.allclose(rows[2].embedding, observations[2].embedding)
    assert rows[2].token_count == observations[2].token_count
    assert rows[2].top_score == pytest.approx(observations[2].top_score)
    assert rows[2].keyword_match == pytest.approx(observations[2].keyword_match)
    assert math.isnan(rows[0].unknown_share)
    assert [r.id for r in reopened.tail(2)] == [4, 5]
    assert [r.id for r in reopened.rows(after_id=3)] == [4, 5]
    assert reopened.max_id() == 5


def test_a_log_written_before_the_keyword_match_gains_the_column(tmp_path: Path, make_observations: Make) -> None:
    path = tmp_path / "queries.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE queries (id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, method TEXT NOT NULL, "
        "embedding BLOB NOT NULL, token_count INTEGER NOT NULL, unknown_share REAL, top_score REAL, "
        "result_count INTEGER NOT NULL, text TEXT, text_hash TEXT);"
    )
    old.execute("INSERT INTO queries (time, method, embedding, token_count, unknown_share, top_score, result_count) "
                "VALUES (1.0, 'dense', ?, 3, 0.0, 0.5, 10)", (np.ones(4, np.float32).tobytes(),))
    old.commit()
    old.close()
    log = QueryLog(path)
    log.append(make_observations(1))
    before, after = log.rows()
    assert math.isnan(before.keyword_match) and before.top_score == pytest.approx(0.5)
    assert math.isfinite(after.keyword_match)


def test_the_log_is_bounded_and_never_reuses_ids(tmp_path: Path, make_observations: Make) -> None:
    log = QueryLog(tmp_path / "q.sqlite", max_rows=10)
    for batch in range(5):
        log.append(make_observations(4, seed=batch))
    assert log.count() == 10
    assert [r.id for r in log.rows()] == list(range(11, 21))  # the oldest rows went first
    assert log.max_id() == 20


def test_rows_past_the_retention_period_are_deleted(tmp_path: Path, make_observations: Make) -> None:
    path = tmp_path / "q.sqlite"
    log = QueryLog(path, retention_days=2)
    observations = make_observations(6)
    now = time.time()
    for i, observation in enumerate(observations):  # 5, 4, 3, 2, 1 and 0 days old
        observation.time = now - (5 - i) * 86_400 + 60
    log.append(observations[:3])
    assert log.count() == 0  # all older than two days: deleted by the insert itself
    log.append(observations[3:])
    assert [round((now - r.time) / 86_400) for r in log.rows()] == [2, 1, 0]
    assert log.expire(now=now + 86_400) == 1
    log.close()
    reopened = QueryLog(path, retention_days=0.5)  # a shorter period applies when the log opens
    assert reopened.count() == 1
    assert QueryLog(tmp_path / "other.sqlite", retention_days=0).expire() == 0  # 0: no age limit


@pytest.mark.parametrize(("mode", "keeps_text", "keeps_hash"), [
    ("off", False, False), ("hashed", False, True), ("full", True, True),
])
def test_text_modes(tmp_path: Path, make_observations: Make, mode: str, keeps_text: bool, keeps_hash: bool) -> None:
    log = QueryLog(tmp_path / "q.sqlite", text_mode=mode)  # type: ignore[arg-type]
    observation = make_observations(1)[0]
    observation.text = "How do I stop  Overfitting?"
    log.append([observation])
    text, digest = sqlite3.connect(tmp_path / "q.sqlite").execute("SELECT text, text_hash FROM queries").fetchone()
    assert (text == "How do I stop  Overfitting?") is keeps_text and (text is None) is not keeps_text
    assert (digest is not None) is keeps_hash
    if keeps_hash:
        assert digest == log.hash_text("how do i stop overfitting?")  # same query, same hash in this log
        assert "overfitting" not in digest.lower()
    assert log.texts() == (["How do I stop  Overfitting?"] if keeps_text else [])


def test_unknown_text_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown text mode"):
        QueryLog(tmp_path / "q.sqlite", text_mode="plain")  # type: ignore[arg-type]


def test_a_corrupt_log_is_moved_aside_and_reported(tmp_path: Path, make_observations: Make) -> None:
    path = tmp_path / "queries.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    log = QueryLog(path)
    assert log.moved_aside is not None and log.moved_aside.name.startswith("queries.sqlite.corrupt-")
    assert log.moved_aside.read_bytes().startswith(b"this is not a database")  # kept, never emptied
    log.append(make_observations(2))
    assert log.count() == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_an_unwritable_state_dir_is_one_clear_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(DriftError, match="cannot be"):
            QueryLog(locked / "drift" / "queries.sqlite")
    finally:
        locked.chmod(0o700)


def test_a_state_dir_below_a_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(DriftError, match="cannot be created"):
        QueryLog(tmp_path / "file" / "drift" / "queries.sqlite")


def test_writer_batches_flushes_and_hands_rows_to_the_monitor(tmp_path: Path, make_observations: Make) -> None:
    log = QueryLog(tmp_path / "q.sqlite")
    batches: list[int] = []
    writer = LogWriter(log, on_written=lambda rows: batches.append(len(rows)), batch_size=16).start()
    for observation in make_observations(100):
        assert writer.submit(observation)
    assert writer.flush(timeout=10)
    assert log.count() == 100 and writer.written == 100 and sum(batches) == 100
    assert max(batches) <= 16
    writer.stop()
    assert not writer.running


class _SlowLog(QueryLog):
    """A log whose inserts wait until released (to fill the writer's queue)."""

    release = threading.Event()

    def append(self, observations: list[QueryObservation]) -> list[int]:  # type: ignore[override]
        self.release.wait(5)
        return super().append(observations)


def test_a_full_queue_drops_instead_of_blocking(tmp_path: Path, make_observations: Make) -> None:
    log = _SlowLog(tmp_path / "q.sqlite")
    writer = LogWriter(log, batch_size=1, max_queue=3).start()
    accepted = [writer.submit(o) for o in make_observations(10)]
    assert not all(accepted) and writer.dropped == accepted.count(False)
    log.release.set()
    writer.stop()
    assert log.count() == accepted.count(True)


def test_a_failing_log_is_counted_and_the_writer_goes_on(tmp_path: Path, make_observations: Make) -> None:
    log = QueryLog(tmp_path / "q.sqlite")
    writer = LogWriter(log).start()
    log._db.close()  # every insert now fails
    writer.submit(make_observations(1)[0])
    assert writer.flush(timeout=10)
    assert writer.failed == 1 and writer.last_error and "failed" in writer.last_error
    assert writer.running
    writer.stop()


@pytest.fixture
def counted(built_index: Path, settings: Settings) -> tuple[Searcher, CountingEncoder]:
    """A searcher over the tiny index whose encoder counts its calls, and that encoder."""
    encoder = CountingEncoder()
    return Searcher.open(built_index, search_config(settings), encoder=encoder), encoder


def _drain(writer: LogWriter) -> None:
    """Start the writer, wait until everything queued is written, and stop it."""
    writer.start()
    assert writer.flush(timeout=10)
    writer.stop()


def _wait_for_rows(log: QueryLog, count: int, timeout: float = 10.0) -> int:
    """Poll until the log holds ``count`` rows or ``timeout`` passes; the rows it holds."""
    deadline = time.monotonic() + timeout
    while log.count() < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return log.count()


class _BareSearcher:
    """A searcher with a model and no backends: enough to measure a query."""

    built_backends: list[str] = []

    class encoder:  # noqa: N801 - stands in for the attribute
        @staticmethod
        def count_tokens(texts: list[str]) -> list[int]:
            return [len(t.split()) for t in texts]

    def backend(self, name: str) -> object:
        raise AssertionError("no backend is built")

    def embed_query(self, query: str) -> np.ndarray:
        if query == "unmeasurable":
            raise ValueError("the model is gone")
        return np.ones(4, np.float32) / 2

    def embed_queries(self, queries: list[str]) -> list[np.ndarray]:
        return [self.embed_query(q) for q in queries]


def test_a_borrowing_writer_measures_each_batch_with_the_searcher_lent_then_and_keeps_none(tmp_path: Path) -> None:
    log = QueryLog(tmp_path / "q.sqlite")
    lent: list[str] = []
    current = _BareSearcher()

    @contextmanager
    def borrow() -> Iterator[_BareSearcher]:
        lent.append("out")
        yield current
        lent.append("back")

    writer = LogWriter(log, batch_size=4, borrow=borrow)
    answered = _BareSearcher()  # the searcher that answered: replaced before the writer gets to the queries
    for i in range(10):
        assert writer.submit_query(answered, f"query {i}", "dense", 3)
    assert all(item.searcher is None for item in list(writer._queue.queue))  # nothing keeps it alive
    writer.submit(QueryObservation(embedding=np.ones(4, np.float32), token_count=2, unknown_share=0.0,
                                   top_score=0.5, result_count=1))  # an observation needs no searcher
    writer.start()
    assert writer.flush(timeout=10)
    assert log.count() == 11 and writer.failed == 0
    assert lent and lent == ["out", "back"] * (len(lent) // 2)  # lent for a batch, always given back
    assert len(lent) // 2 <= 3  # once per batch of up to 4 queries, not once per query
    writer.stop()


def test_a_writer_with_nothing_to_borrow_counts_the_queries_as_failed(tmp_path: Path) -> None:
    log = QueryLog(tmp_path / "q.sqlite")

    def borrow() -> Iterator[_BareSearcher]:
        raise RuntimeError("the service is not ready")

    writer = LogWriter(log, borrow=borrow).start()  # type: ignore[arg-type]
    writer.submit_query(_BareSearcher(), "gradient descent", "dense", 3)
    assert writer.flush(timeout=10)
    assert writer.failed == 1 and log.count() == 0 and writer.running
    writer.stop()


def test_keyword_queries_are_encoded_together_in_one_batch_and_measured_as_alone(
    tmp_path: Path, counted: tuple[Searcher, CountingEncoder], built_index: Path, settings: Settings
) -> None:
    searcher, encoder = counted
    log = QueryLog(tmp_path / "q.sqlite")
    writer = LogWriter(log, batch_size=64)
    queries = [f"adam learning rate {i}" for i in range(20)] + ["adam learning rate 3"]  # one asked twice
    for query in queries:
        assert writer.submit_query(searcher, query, "bm25", 10)  # a keyword search left no embedding
    _drain(writer)
    assert encoder.calls == [list(dict.fromkeys(queries))]  # one encode for the batch, each query once
    rows = log.rows()
    assert [r.text for r in rows] == [None] * len(queries) and writer.failed == 0
    alone = Searcher.open(built_index, search_config(settings), encoder=HashingEncoder())
    for row, query in zip(rows, queries, strict=True):  # the same features as a query measured on its own
        expected = observe_query(alone, query, "bm25", 10)
        assert np.allclose(row.embedding, expected.embedding)
        assert row.top_score == pytest.approx(expected.top_score, abs=1e-6)
        assert row.token_count == expected.token_count
        assert row.unknown_share == pytest.approx(expected.unknown_share)


def test_a_dense_query_s_own_embedding_is_reused_not_encoded_again(
    tmp_path: Path, counted: tuple[Searcher, CountingEncoder]
) -> None:
    searcher, encoder = counted
    searcher.search("dropout rate", k=3, method="dense")
    writer = LogWriter(QueryLog(tmp_path / "q.sqlite"))
    writer.submit_query(searcher, "dropout rate", "dense", 3)
    writer.submit_query(searcher, "bm25 only query", "bm25", 3)
    _drain(writer)
    assert encoder.calls == [["dropout rate"], ["bm25 only query"]]


def test_one_query_the_model_cannot_take_fails_alone_in_its_batch(tmp_path: Path) -> None:
    log = QueryLog(tmp_path / "q.sqlite")
    writer = LogWriter(log, batch_size=8)
    searcher = _BareSearcher()
    for query in ("one", "unmeasurable", "two"):
        writer.submit_query(searcher, query, "bm25", 1)  # type: ignore[arg-type]
    _drain(writer)
    assert log.count() == 2 and writer.failed == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread has its own priority on Linux only")
def test_the_writer_thread_runs_at_the_lowest_priority_and_the_process_keeps_its_own(tmp_path: Path) -> None:
    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    writer = LogWriter(QueryLog(tmp_path / "q.sqlite")).start()
    try:
        wait = time.monotonic() + 10
        while writer.native_id is None and time.monotonic() < wait:
            time.sleep(0.01)
        assert writer.native_id is not None
        assert os.getpriority(os.PRIO_PROCESS, writer.native_id) == 19
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own  # the requests' threads keep theirs
    finally:
        writer.stop()


def test_queries_to_measure_wait_for_a_pause_in_searches(tmp_path: Path) -> None:
    log = QueryLog(tmp_path / "q.sqlite")
    quiet = {"s": 0.0}  # searches running
    writer = LogWriter(log, batch_size=1, linger=0.0, quiet_for=lambda: quiet["s"], idle_gap=0.05,
                       max_delay=30).start()
    try:
        writer.submit_query(_BareSearcher(), "one", "bm25", 1)  # type: ignore[arg-type]
        time.sleep(0.3)
        assert log.count() == 0  # held while the service searches
        quiet["s"] = 1.0  # the searches paused
        assert _wait_for_rows(log, 1) == 1
    finally:
        writer.stop()


def test_under_steady_searches_a_query_waits_at_most_max_delay_and_a_flush_not_at_all(tmp_path: Path) -> None:
    log = QueryLog(tmp_path / "q.sqlite")
    writer = LogWriter(log, batch_size=1, linger=0.0, quiet_for=lambda: 0.0, max_delay=0.2).start()
    try:
        writer.submit_query(_BareSearcher(), "one", "bm25", 1)  # type: ignore[arg-type]
        wait = time.monotonic() + 10
        while log.count() == 0 and time.monotonic() < wait:
            time.sleep(0.01)
        assert log.count() == 1  # written although the service never paused
        writer.max_delay = 60
        writer.submit_query(_BareSearcher(), "two", "bm25", 1)  # type: ignore[arg-type]
        started = time.monotonic()
        assert writer.flush(timeout=10) and log.count() == 2
        assert time.monotonic() - started < 10
    finally:
        writer.stop()


def test_an_observation_already_measured_never_waits(tmp_path: Path, make_observations: Make) -> None:
    log = QueryLog(tmp_path / "q.sqlite")
    writer = LogWriter(log, batch_size=1, linger=0.0, quiet_for=lambda: 0.0, max_delay=60).start()
    try:
        writer.submit(make_observations(1)[0])
        assert _wait_for_rows(log, 1) == 1
    finally:
        writer.stop()


def test_a_dense_answer_s_embedding_travels_with_the_query_and_is_not_encoded_again(
    tmp_path: Path, counted: tuple[Searcher, CountingEncoder]
) -> None:
    searcher, encoder = counted
    searcher.search("dropout rate", k=3, method="dense")
    writer = LogWriter(QueryLog(tmp_path / "q.sqlite"), borrow=lambda: nullcontext(searcher))
    writer.submit_query(searcher, "dropout rate", "dense", 3)
    searcher.cache._items.clear()  # the cache forgot it while the query waited (a long queue, a busy service)
    _drain(writer)
    assert encoder.calls == [["dropout rate"]]  # only the answer's own encode
    expected = observe_query(searcher, "dropout rate", "dense", 3)
    assert np.allclose(writer.log.rows()[0].embedding, expected.embedding)


class _OtherVersion(Searcher):
    version = "another-version"  # type: ignore[assignment]


def test_an_embedding_from_another_index_version_is_not_trusted(
    tmp_path: Path, built_index: Path, settings: Settings
) -> None:
    answered = Searcher.open(built_index, search_config(settings), encoder=CountingEncoder())
    answered.search("dropout rate", k=3, method="dense")
    later = _OtherVersion.open(built_index, search_config(settings), encoder=(encoder := CountingEncoder()))
    writer = LogWriter(QueryLog(tmp_path / "q.sqlite"), borrow=lambda: nullcontext(later))
    writer.submit_query(answered, "dropout rate", "dense", 3)
    _drain(writer)
    assert encoder.calls == [["dropout rate"]]  # measured with the version serving now: encoded by its model
