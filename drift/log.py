"""The query log: a bounded SQLite table of answered queries in the state directory, written off the hot path.

:class:`QueryLog` stores :class:`~drift.features.QueryObservation` rows (oldest dropped past ``max_rows``, and
rows older than ``retention_days``) and
keeps the query text only as the text mode allows (``off``, ``hashed``, ``full``). A log that SQLite cannot read
is moved aside (``queries.sqlite.corrupt-<time>``) and reported, never emptied in place.

:class:`LogWriter` measures and inserts queries on a background thread: a request only puts an item on a queue.
It measures a batch of queries at a time, their embeddings taken from the query cache (a dense or hybrid search
left its own there) or, for the rest (keyword searches), encoded together in one batch, at the lowest CPU priority.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import queue
import secrets
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from drift.features import QueryObservation, SearcherLike, observe_query
from mlsearch.errors import DriftError

logger = logging.getLogger(__name__)

TextMode = Literal["off", "hashed", "full"]
TEXT_MODES: tuple[str, ...] = ("off", "hashed", "full")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    method TEXT NOT NULL,
    embedding BLOB NOT NULL,
    token_count INTEGER NOT NULL,
    unknown_share REAL,
    top_score REAL,
    result_count INTEGER NOT NULL,
    text TEXT,
    text_hash TEXT,
    keyword_match REAL
);
CREATE INDEX IF NOT EXISTS queries_time ON queries (time);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_COLUMNS = ("id, time, method, embedding, token_count, unknown_share, top_score, result_count, text, text_hash, "
            "keyword_match")
_ADDED_COLUMNS = {"keyword_match": "REAL"}
"""Columns added since the first schema: a log written before them gains them (NULL in the old rows)."""


def drift_dir(state_dir: Path) -> Path:
    """Where drift monitoring keeps its files inside the state directory."""
    return Path(state_dir) / "drift"


class QueryLog:
    """A bounded, thread-safe SQLite log of query observations.

    Args:
        path: The database file (created with its folder when missing).
        max_rows: Rows kept; the oldest are deleted after each insert.
        retention_days: Rows older than this many days are deleted after each insert and when the log opens
            (0 or ``None``: no age limit).
        text_mode: ``off`` (no text), ``hashed`` (a keyed SHA-256 of the text) or ``full``.

    Raises:
        DriftError: The folder cannot be created or the database cannot be written.
    """

    FILE = "queries.sqlite"

    def __init__(
        self, path: Path, max_rows: int = 100_000, text_mode: TextMode = "off", retention_days: float | None = None
    ) -> None:
        if text_mode not in TEXT_MODES:
            raise ValueError(f"unknown text mode {text_mode!r}; valid: {', '.join(TEXT_MODES)}")
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        self.path = Path(path)
        self.max_rows = max_rows
        self.retention_s = retention_days * 86_400 if retention_days else None
        self.text_mode = text_mode
        self.moved_aside: Path | None = None
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DriftError(f"state directory {self.path.parent} cannot be created: {exc.strerror or exc}") from None
        self._db = self._open()
        self._salt = self._meta_salt()
        self.expire()

    @classmethod
    def in_state_dir(
        cls, state_dir: Path, max_rows: int = 100_000, text_mode: TextMode = "off",
        retention_days: float | None = None,
    ) -> QueryLog:
        """The log at ``<state_dir>/drift/queries.sqlite``."""
        return cls(drift_dir(state_dir) / cls.FILE, max_rows=max_rows, text_mode=text_mode,
                   retention_days=retention_days)

    # -- opening, corruption ---------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _open(self) -> sqlite3.Connection:
        existed = self.path.exists() and self.path.stat().st_size > 0
        try:
            db = self._connect()
            if existed:
                check = db.execute("PRAGMA quick_check").fetchone()
                if not check or check[0] != "ok":
                    db.close()
                    raise sqlite3.DatabaseError(f"integrity check failed: {check[0] if check else 'no answer'}")
            db.executescript(_SCHEMA)
            _add_columns(db)
            db.commit()
            return db
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and not existed:
                raise DriftError(f"query log {self.path} cannot be written: {exc}") from None
            if not existed:
                raise DriftError(f"query log {self.path} cannot be created: {exc}") from None
            self._move_aside(exc)
            try:
                db = self._connect()
                db.executescript(_SCHEMA)
                db.commit()
            except sqlite3.Error as again:
                raise DriftError(f"query log {self.path} cannot be written: {again}") from None
            return db

    def _move_aside(self, reason: Exception) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            self.path.replace(target)
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    side.replace(target.with_name(target.name + suffix))
        except OSError as exc:
            raise DriftError(f"query log {self.path} is corrupt ({reason}) and cannot be moved aside: {exc}") from None
        self.moved_aside = target
        logger.error("query log %s was unreadable (%s); moved it aside to %s and started a new one",
                     self.path, reason, target)

    def _meta_salt(self) -> bytes:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'salt'").fetchone()
            if row:
                return bytes.fromhex(row[0])
            salt = secrets.token_bytes(16)
            self._db.execute("INSERT INTO meta VALUES ('salt', ?)", (salt.hex(),))
            self._db.commit()
            return salt

    # -- writing ---------------------------------------------------------------------------------------
    def hash_text(self, text: str) -> str:
        """The keyed SHA-256 under which ``hashed`` mode stores a query (same text, same hash, in this log)."""
        normalized = " ".join(text.split()).lower()
        return hmac.new(self._salt, normalized.encode(), hashlib.sha256).hexdigest()

    def _row(self, o: QueryObservation) -> tuple[Any, ...]:
        text = o.text if self.text_mode == "full" else None
        digest = self.hash_text(o.text) if o.text is not None and self.text_mode != "off" else None
        return (
            float(o.time), o.method, np.asarray(o.embedding, dtype=np.float32).tobytes(), int(o.token_count),
            _nullable(o.unknown_share), _nullable(o.top_score), int(o.result_count), text, digest,
            _nullable(o.keyword_match),
        )

    def append(self, observations: Sequence[QueryObservation]) -> list[int]:
        """Insert observations in one transaction, then drop the oldest rows beyond ``max_rows``.

        Returns:
            The new rows' ids (also set on the observations).

        Raises:
            sqlite3.Error: The database cannot be written (the writer thread logs it and carries on).
        """
        if not observations:
            return []
        rows = [self._row(o) for o in observations]
        with self._lock:
            try:
                cursor = self._db.cursor()
                ids = []
                for row in rows:
                    cursor.execute(
                        "INSERT INTO queries (time, method, embedding, token_count, unknown_share, top_score, "
                        "result_count, text, text_hash, keyword_match) VALUES (?,?,?,?,?,?,?,?,?,?)", row,
                    )
                    ids.append(int(cursor.lastrowid or 0))
                cursor.execute(
                    "DELETE FROM queries WHERE id <= (SELECT id FROM queries ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (self.max_rows,),
                )
                if self.retention_s is not None:
                    cursor.execute("DELETE FROM queries WHERE time < ?", (time.time() - self.retention_s,))
                self._db.commit()
            except sqlite3.Error:
                self._db.rollback()
                raise
        for observation, row_id in zip(observations, ids, strict=True):
            observation.id = row_id
        return ids

    def expire(self, now: float | None = None) -> int:
        """Delete the rows older than the retention period (``now`` is the current time by default).

        Returns:
            How many rows were deleted.
        """
        if self.retention_s is None:
            return 0
        cutoff = (time.time() if now is None else now) - self.retention_s
        with self._lock:
            deleted = self._db.execute("DELETE FROM queries WHERE time < ?", (cutoff,)).rowcount
            self._db.commit()
        if deleted:
            logger.info("query log: deleted %d queries older than %.4g days", deleted, self.retention_s / 86_400)
        return int(deleted)

    # -- reading ---------------------------------------------------------------------------------------
    def _select(self, sql: str, args: tuple[Any, ...]) -> list[QueryObservation]:
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_observation(row) for row in rows]

    def rows(self, after_id: int = 0, limit: int | None = None) -> list[QueryObservation]:
        """Rows with ``id > after_id``, oldest first (at most ``limit``)."""
        return self._select(
            f"SELECT {_COLUMNS} FROM queries WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, -1 if limit is None else limit),
        )

    def tail(self, count: int, after_id: int = 0) -> list[QueryObservation]:
        """The last ``count`` rows with ``id > after_id``, oldest first."""
        newest_first = self._select(
            f"SELECT {_COLUMNS} FROM queries WHERE id > ? ORDER BY id DESC LIMIT ?", (after_id, count)
        )
        return newest_first[::-1]

    def texts(self, after_id: int = 0) -> list[str]:
        """The stored query texts (``full`` mode rows only), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT text FROM queries WHERE id > ? AND text IS NOT NULL ORDER BY id", (after_id,)
            ).fetchall()
        return [row[0] for row in rows]

    def count(self) -> int:
        """Rows held."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM queries").fetchone()[0])

    def max_id(self) -> int:
        """The highest id ever given (0 for a new log); ids are never reused."""
        with self._lock:
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'queries'").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()


def _add_columns(db: sqlite3.Connection) -> None:
    """Add the columns of :data:`_ADDED_COLUMNS` that a log from an older version lacks."""
    present = {row[1] for row in db.execute("PRAGMA table_info(queries)")}
    for name, kind in _ADDED_COLUMNS.items():
        if name not in present:
            db.execute(f"ALTER TABLE queries ADD COLUMN {name} {kind}")


def _nullable(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _observation(row: Sequence[Any]) -> QueryObservation:
    row_id, when, method, blob, tokens, unknown, top, results, text, _digest, match = row
    return QueryObservation(
        embedding=np.frombuffer(blob, dtype=np.float32).copy(),
        token_count=int(tokens),
        unknown_share=math.nan if unknown is None else float(unknown),
        top_score=math.nan if top is None else float(top),
        keyword_match=math.nan if match is None else float(match),
        result_count=int(results),
        method=method,
        time=float(when),
        text=text,
        id=int(row_id),
    )


@dataclass(frozen=True)
class PendingQuery:
    """An answered query waiting to be measured and logged.

    ``searcher`` is the one that answered it, or None when the writer borrows the searcher serving at
    measuring time (see :class:`LogWriter`). ``embedding`` is the query's embedding when the answer computed
    it (dense, hybrid), from the index version ``version``: the writer reuses it when it measures with that
    version, however long the query waited, rather than encoding the query again.
    """

    searcher: SearcherLike | None
    query: str
    method: str
    result_count: int
    time: float
    embedding: np.ndarray | None = None
    version: str | None = None


Borrow = Callable[[], AbstractContextManager[SearcherLike]]
WRITER_NICE = 19
IDLE_GAP_S = 0.05
"""The pause in searches the writer waits for before it measures queries (see :class:`LogWriter`)."""
MAX_DELAY_S = 5.0
"""The longest a logged query waits for such a pause."""
"""The writer thread's nice value above the process's (19: the lowest priority)."""


class LogWriter:
    """Measures and logs answered queries on a background thread, in batches.

    :meth:`submit` never blocks: when the queue is full the query is dropped and counted. :meth:`flush`
    waits until everything submitted before the call is written. A failing database is logged and counted;
    the caller is never affected.

    Args:
        log: Where rows go.
        on_written: Called on the writer thread with each stored batch (the monitor's hook).
        batch_size: Most rows per transaction.
        max_queue: Most queries waiting.
        linger: Seconds a query may wait for others to share its batch (a flush or a full batch ends the wait
            at once): fewer wake-ups of the writer thread, so that it rarely competes with a request.
        borrow: Lends the searcher serving now, held open while the writer measures one batch with it. A
            service passes it, so that queued queries keep no searcher alive: when the writer lags behind
            under load, the versions that answered them (replaced since, with their files and memory) would
            otherwise stay open, or be opened again, to measure them.
        nice: How much lower than the process the writer thread's CPU priority is (Linux; 0 leaves it). Measuring
            a keyword query means encoding it, a few milliseconds of CPU that would otherwise compete with the
            requests: at the lowest priority the writer gets only the CPU the requests leave, and falls behind
            (then drops, counted, once ``max_queue`` queries wait) rather than slowing them down.
        quiet_for: Seconds since the service last searched (0 while a search runs). When given, a batch with
            queries to measure waits until the searches have paused for ``idle_gap`` seconds, or until its oldest
            query has waited ``max_delay``; a flush never waits. Priority alone is not enough: an OpenVINO or ONNX
            Runtime encoder runs on its own threads, at the process's priority, and any measuring holds the GIL.
        idle_gap: The pause in searches a batch waits for.
        max_delay: The longest a query waits for such a pause (under steady traffic, batches go on anyway).
    """

    def __init__(
        self, log: QueryLog, on_written: Callable[[list[QueryObservation]], None] | None = None,
        batch_size: int = 64, max_queue: int = 10_000, linger: float = 1.0, borrow: Borrow | None = None,
        nice: int = WRITER_NICE, quiet_for: Callable[[], float] | None = None, idle_gap: float = IDLE_GAP_S,
        max_delay: float = MAX_DELAY_S,
    ) -> None:
        self.log = log
        self.borrow = borrow
        self.on_written = on_written
        self.batch_size = batch_size
        self._queue: queue.Queue[PendingQuery | QueryObservation | None] = queue.Queue(maxsize=max_queue)
        self._done = threading.Condition()
        self._submitted = 0
        self._processed = 0
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self.last_error: str | None = None
        self.linger = linger
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.nice = nice
        self.native_id: int | None = None  # the writer thread's id for the OS, once it runs
        self.quiet_for = quiet_for
        self.idle_gap = idle_gap
        self.max_delay = max_delay
        self._urgent = threading.Event()  # a flush or stop waits: no batch waits for a pause

    @property
    def running(self) -> bool:
        """Whether the writer thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> LogWriter:
        """Start the writer thread (idempotent)."""
        if not self.running:
            self._thread = threading.Thread(target=self._run, name="drift-log-writer", daemon=True)
            self._thread.start()
        return self

    def submit_query(self, searcher: SearcherLike, query: str, method: str, result_count: int) -> bool:
        """Queue an answered query to be measured and logged; False when it had to be dropped."""
        kept = None if self.borrow is not None else searcher
        peek = getattr(searcher, "cached_embedding", None)  # a dict lookup: the answer's own embedding, if any
        embedding = peek(query) if peek is not None else None
        version = getattr(searcher, "version", None) if embedding is not None else None
        return self.submit(PendingQuery(kept, query, method, result_count, time.time(), embedding, version))

    def submit(self, item: PendingQuery | QueryObservation) -> bool:
        """Queue a pending query or an already measured observation; False when dropped."""
        with self._done:
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                self.dropped += 1
                return False
            self._submitted += 1
        if self._queue.qsize() >= self.batch_size:
            self._wake.set()
        return True

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every item submitted before this call is written (or failed). False on timeout."""
        self._urgent.set()
        self._wake.set()
        with self._done:
            target = self._submitted
            if not self.running:
                return self._processed >= target
            return self._done.wait_for(lambda: self._processed >= target, timeout=timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        if self._thread is None:
            return
        self.flush(timeout)
        self._queue.put(None)
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        self.native_id = threading.get_native_id()
        if self.nice:
            lower_thread_priority(self.native_id, self.nice)
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._queue.qsize() + 1 < self.batch_size:  # let a batch gather, unless someone waits for it
                self._wake.wait(self.linger)
            self._wake.clear()
            batch = [item]
            stop = False
            while len(batch) < self.batch_size:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._await_pause(batch)
            self._write(batch)
            if self._queue.empty():
                self._urgent.clear()
            if stop:
                return

    def _await_pause(self, batch: list[PendingQuery | QueryObservation]) -> None:
        """Hold a batch with queries to measure until the searches pause (see ``quiet_for``)."""
        pending = [item.time for item in batch if isinstance(item, PendingQuery)]
        if self.quiet_for is None or not pending:
            return
        deadline = min(pending) + self.max_delay
        while not self._urgent.is_set():
            quiet = self.quiet_for()
            if quiet >= self.idle_gap or time.time() >= deadline:
                return
            self._urgent.wait(min(max(self.idle_gap - quiet, 0.005), max(deadline - time.time(), 0.0)))

    def _write(self, batch: list[PendingQuery | QueryObservation]) -> None:
        observations = []
        try:
            with self._lent(batch) as lent:
                embeddings = _batch_embeddings(batch, lent)
                for item, embedding in zip(batch, embeddings, strict=True):
                    try:
                        observations.append(
                            item if isinstance(item, QueryObservation) else _measure(item, lent, embedding)
                        )
                    except Exception as exc:  # a query that cannot be measured must not stop the writer
                        self._fail(f"measuring a query failed: {exc}")
        except Exception as exc:  # no searcher to lend (none loaded): the measured rows are still written
            self._fail(f"measuring queries failed: {exc}", sum(isinstance(i, PendingQuery) for i in batch))
        try:
            self.log.append(observations)
            self.written += len(observations)
            if self.on_written is not None and observations:
                self.on_written(observations)
        except Exception as exc:  # the service keeps answering when the log cannot be written
            self._fail(f"writing {len(observations)} queries to {self.log.path} failed: {exc}", len(observations))
        with self._done:
            self._processed += len(batch)
            self._done.notify_all()

    def _fail(self, message: str, count: int = 1) -> None:
        self.failed += count
        if self.last_error != message:
            logger.warning(message)
        self.last_error = message


    def _lent(self, batch: list[PendingQuery | QueryObservation]) -> AbstractContextManager[SearcherLike | None]:
        """The borrowed searcher for a batch with queries to measure, else nothing."""
        if self.borrow is None or not any(isinstance(item, PendingQuery) for item in batch):
            return nullcontext()
        return self.borrow()


def lower_thread_priority(native_id: int, nice: int) -> bool:
    """Raise the nice value of one thread by ``nice`` (Linux, where a thread has its own); False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False  # elsewhere setpriority would lower the whole process, the requests' threads included
    try:
        current = os.getpriority(os.PRIO_PROCESS, native_id)
        os.setpriority(os.PRIO_PROCESS, native_id, min(19, current + nice))
    except OSError as exc:
        logger.info("cannot lower the drift log writer's priority: %s", exc)
        return False
    return True


def _batch_embeddings(
    batch: Sequence[PendingQuery | QueryObservation], lent: SearcherLike | None
) -> list[np.ndarray | None]:
    """Each pending query's embedding, the queries of one searcher encoded together (None: measure it alone).

    One batched encode of a whole batch costs a fraction of one encode per query, and holds the GIL and a core
    far less. Should it fail (one query the model cannot take), each query is measured on its own, so that only
    the bad one fails.
    """
    embeddings: list[np.ndarray | None] = [None] * len(batch)
    groups: dict[int, tuple[SearcherLike, list[int]]] = {}
    for i, item in enumerate(batch):
        if isinstance(item, PendingQuery):
            searcher = _searcher_for(item, lent)
            if searcher is None:
                continue
            if item.embedding is not None and item.version is not None and \
                    getattr(searcher, "version", None) == item.version:
                embeddings[i] = item.embedding  # computed by the answer, with this very model
            else:
                groups.setdefault(id(searcher), (searcher, []))[1].append(i)
    for searcher, indexes in groups.values():
        queries = [cast(PendingQuery, batch[i]).query for i in indexes]
        try:
            vectors = searcher.embed_queries(queries)
        except Exception as exc:  # measured one by one below
            logger.debug("encoding %d queries together failed (%s); measuring them one by one", len(queries), exc)
            continue
        for i, vector in zip(indexes, vectors, strict=True):
            embeddings[i] = vector
    return embeddings


def _searcher_for(item: PendingQuery, lent: SearcherLike | None) -> SearcherLike | None:
    """The searcher that measures a query: the one that answered it when it was kept, else the one lent now."""
    return item.searcher if item.searcher is not None else lent


def _measure(item: PendingQuery, lent: SearcherLike | None, embedding: np.ndarray | None = None) -> QueryObservation:
    searcher = _searcher_for(item, lent)
    if searcher is None:
        raise DriftError("no searcher to measure the query with")
    return observe_query(searcher, item.query, item.method, item.result_count, item.time, embedding=embedding)
