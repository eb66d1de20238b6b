"""The SQLite chunk store: text, metadata and embedding of every chunk, addressed by position."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from indexing.chunks import Chunk, embedding_text
from indexing.filters import ChunkFilter

IN_LIMIT = 10_000
"""Values bound in one ``IN (...)`` list when embeddings are read by key (under SQLite's variable limit)."""

_SCHEMA = """
CREATE TABLE chunks (
    position INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    doc_id TEXT NOT NULL,
    title TEXT NOT NULL,
    heading TEXT NOT NULL,
    text TEXT NOT NULL,
    chunk_index INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    tags TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    embedding BLOB,
    source_type TEXT NOT NULL DEFAULT '',
    path TEXT NOT NULL DEFAULT '',
    url TEXT NOT NULL DEFAULT '',
    page INTEGER,
    cell INTEGER
);
CREATE INDEX chunks_doc ON chunks(doc_id);
CREATE INDEX chunks_text_hash ON chunks(text_hash);
CREATE TABLE chunk_tags (position INTEGER NOT NULL, tag TEXT NOT NULL);
CREATE INDEX chunk_tags_tag ON chunk_tags(tag);
"""


def text_hash(text: str) -> str:
    """The key under which an embedding is reused: sha256 of the exact embedded text."""
    return hashlib.sha256(text.encode()).hexdigest()


class ChunkStore:
    """Read access to ``chunks.sqlite`` (one connection per thread), and :meth:`write` to create it.

    A published version's store never changes (an update publishes a new version), so a searcher's store keeps
    the ``cache_size`` chunks :meth:`get` read last (an LRU; 0, the default, keeps none, for stores still being
    written): the chunks that searches keep returning are read and decoded once.
    """

    FILE = "chunks.sqlite"
    SEARCH_CACHE_SIZE = 4096
    """The chunks a searcher's store keeps (a few MB of text)."""

    def __init__(self, path: Path, cache_size: int = 0) -> None:
        self.path = path
        self.cache_size = cache_size
        self._cache: OrderedDict[int, Chunk] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []  # every thread's, so close_all can reach them
        self._connections_lock = threading.Lock()

    @classmethod
    def write(cls, directory: Path, chunks: Sequence[Chunk], embeddings: np.ndarray | None) -> ChunkStore:
        """Create the store; chunk ``i`` gets position ``i`` (the id used by every index)."""
        writer = ChunkStoreWriter.create(directory)
        try:
            writer.add_chunks(chunks)
            if embeddings is not None:
                writer.set_embeddings(range(len(chunks)), np.asarray(embeddings, np.float32))
            writer.commit()
        finally:
            writer.close()
        return cls(directory / cls.FILE)

    @property
    def _db(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    @staticmethod
    def _chunk(row: Sequence[object]) -> Chunk:
        return Chunk(
            id=str(row[0]), doc_id=str(row[1]), title=str(row[2]), heading=str(row[3]), text=str(row[4]),
            position=int(row[5]), tokens=int(row[6]), tags=tuple(json.loads(str(row[7]))),  # type: ignore[call-overload]
            source_type=str(row[8]), path=str(row[9]), url=str(row[10]),
            page=None if row[11] is None else int(row[11]),  # type: ignore[call-overload]
            cell=None if row[12] is None else int(row[12]),  # type: ignore[call-overload]
        )

    _BASE_COLUMNS = "id, doc_id, title, heading, text, chunk_index, tokens, tags"
    _LOCATION_COLUMNS = {"source_type": "''", "path": "''", "url": "''", "page": "NULL", "cell": "NULL"}

    @property
    def _columns(self) -> str:
        """The selected columns; a store written before source types and locations existed reads as blanks."""
        columns = getattr(self._local, "columns", None)
        if columns is None:
            present = {str(r[1]) for r in self._db.execute("PRAGMA table_info(chunks)")}
            extra = [name if name in present else f"{default} AS {name}"
                     for name, default in self._LOCATION_COLUMNS.items()]
            columns = ", ".join([self._BASE_COLUMNS, *extra])
            self._local.columns = columns
        return str(columns)

    def get(self, positions: Iterable[int]) -> dict[int, Chunk]:
        """The chunks at these positions, keyed by position (unknown positions are left out)."""
        wanted = [int(p) for p in positions if int(p) >= 0]
        found: dict[int, Chunk] = {}
        with self._cache_lock:
            for position in wanted:
                chunk = self._cache.get(position)
                if chunk is not None:
                    self._cache.move_to_end(position)
                    found[position] = chunk
        missing = [p for p in dict.fromkeys(wanted) if p not in found]
        if not missing:
            return found
        marks = ",".join("?" * len(missing))
        rows = self._db.execute(
            f"SELECT position, {self._columns} FROM chunks WHERE position IN ({marks})", missing
        ).fetchall()
        read = {int(r[0]): self._chunk(r[1:]) for r in rows}
        if self.cache_size > 0:
            with self._cache_lock:
                self._cache.update(read)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        found.update(read)
        return found

    def __iter__(self) -> Iterator[Chunk]:
        for row in self._db.execute(f"SELECT {self._columns} FROM chunks ORDER BY position"):
            yield self._chunk(row)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def chunks_with_embeddings(self) -> Iterator[tuple[Chunk, np.ndarray | None]]:
        """Every chunk with its stored embedding (None when none was stored), by position."""
        query = f"SELECT {self._columns}, embedding FROM chunks ORDER BY position"
        for row in self._db.execute(query):
            blob = row[-1]
            yield self._chunk(row[:-1]), None if blob is None else np.frombuffer(blob, np.float32)

    def embeddings_at(self, positions: Iterable[int]) -> dict[int, np.ndarray]:
        """The stored embeddings of the chunks at these positions, keyed by position (chunks without one, and
        unknown positions, are left out)."""
        rows = self._stored_embeddings("position", "position", sorted({int(p) for p in positions if int(p) >= 0}))
        return {int(p): vector for p, vector in rows}

    def document_spans(self) -> dict[str, tuple[int, int]]:
        """``doc_id → (first position, chunk count)`` of every document."""
        rows = self._db.execute("SELECT doc_id, MIN(position), COUNT(*) FROM chunks GROUP BY doc_id").fetchall()
        return {str(r[0]): (int(r[1]), int(r[2])) for r in rows}

    def embeddings_of(self, doc_ids: Iterable[str]) -> dict[str, np.ndarray]:
        """The stored embeddings of these documents' chunks, keyed by the hash of their embedded text."""
        rows = self._stored_embeddings("text_hash", "doc_id", sorted(set(doc_ids)))
        return {str(h): vector for h, vector in rows}

    def _stored_embeddings(self, key: str, column: str, values: list[Any]) -> list[tuple[Any, np.ndarray]]:
        """``(key, embedding)`` of the chunks whose ``column`` is one of ``values`` and that have an embedding
        (``key`` and ``column`` are this module's own column names, never user input)."""
        rows: list[tuple[Any, bytes]] = []
        for start in range(0, len(values), IN_LIMIT):  # SQLite bounds the variables of one statement
            part = values[start:start + IN_LIMIT]
            rows += self._db.execute(
                f"SELECT {key}, embedding FROM chunks WHERE {column} IN ({','.join('?' * len(part))}) "
                "AND embedding IS NOT NULL", part,
            ).fetchall()
        return [(k, np.frombuffer(b, np.float32)) for k, b in rows]

    def ids(self) -> list[str]:
        """Every chunk id, by position."""
        return [str(r[0]) for r in self._db.execute("SELECT id FROM chunks ORDER BY position")]

    def ids_fingerprint(self) -> str:
        """sha256 of every chunk id, by position, one per line (an update's fingerprint), joined in SQLite."""
        joined = self._db.execute(
            "SELECT COALESCE(group_concat(id, char(10)), '') FROM (SELECT id FROM chunks ORDER BY position)"
        ).fetchone()[0]
        return hashlib.sha256(str(joined).encode()).hexdigest()

    def documents(self) -> list[tuple[str, str, str, int]]:
        """``(doc_id, title, source_type, chunk count)`` of every document in the store, by doc id."""
        source = "source_type" if "source_type" in self._columns.split(", ") else "''"
        rows = self._db.execute(
            f"SELECT doc_id, MIN(title), MIN({source}), COUNT(*) FROM chunks GROUP BY doc_id ORDER BY doc_id"
        ).fetchall()
        return [(str(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows]

    def positions_with_tags(self, tags: Sequence[str]) -> np.ndarray:
        """Positions of the chunks that carry any of the tags, as a sorted int64 array."""
        if not tags:
            return np.zeros(0, np.int64)
        marks = ",".join("?" * len(tags))
        rows = self._db.execute(
            f"SELECT DISTINCT position FROM chunk_tags WHERE tag IN ({marks}) ORDER BY position",
            [t.lower() for t in tags],
        ).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def positions_matching(self, filters: ChunkFilter) -> np.ndarray | None:
        """Positions of the chunks that pass a filter, as a sorted int64 array (None for an empty filter)."""
        if filters.is_empty:
            return None
        where: list[str] = []
        args: list[object] = []
        if filters.tags:
            marks = ",".join("?" * len(filters.tags))
            where.append(f"position IN (SELECT position FROM chunk_tags WHERE tag IN ({marks}))")
            args.extend(filters.tags)
        if filters.doc_ids:
            where.append(f"doc_id IN ({','.join('?' * len(filters.doc_ids))})")
            args.extend(filters.doc_ids)
        columns = self._columns.split(", ")
        if filters.source_types:
            if "source_type" not in columns:
                return np.zeros(0, np.int64)
            where.append(f"source_type IN ({','.join('?' * len(filters.source_types))})")
            args.extend(filters.source_types)
        if filters.path_prefix:
            if "path" not in columns:
                return np.zeros(0, np.int64)
            where.append("substr(path, 1, ?) = ?")
            args.extend([len(filters.path_prefix), filters.path_prefix])
        rows = self._db.execute(
            f"SELECT position FROM chunks WHERE {' AND '.join(where)} ORDER BY position", args
        ).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def tags(self) -> list[str]:
        """Every distinct tag that some chunk carries, sorted."""
        return [str(r[0]) for r in self._db.execute("SELECT DISTINCT tag FROM chunk_tags ORDER BY tag")]

    def embeddings_by_text_hash(self, dimension: int) -> dict[str, np.ndarray]:
        """Every stored embedding, keyed by the hash of its embedded text (for reuse on rebuild)."""
        out: dict[str, np.ndarray] = {}
        for key, blob in self._db.execute("SELECT text_hash, embedding FROM chunks WHERE embedding IS NOT NULL"):
            vector = np.frombuffer(blob, dtype=np.float32)
            if vector.shape[0] == dimension:
                out[str(key)] = vector
        return out

    def embedded_count(self, dimension: int) -> int:
        """How many chunks have a stored ``dimension``-d embedding."""
        query = "SELECT COUNT(*) FROM chunks WHERE embedding IS NOT NULL AND length(embedding) = ?"
        return int(self._db.execute(query, (4 * dimension,)).fetchone()[0])

    def embeddings(self) -> np.ndarray:
        """All embeddings by position, as a float32 matrix (rows of zeros where none was stored)."""
        rows = self._db.execute("SELECT embedding FROM chunks ORDER BY position").fetchall()
        vectors = [np.frombuffer(r[0], np.float32) for r in rows if r[0] is not None]
        return np.vstack(vectors) if vectors and len(vectors) == len(rows) else np.zeros((0, 0), np.float32)

    def embedding_batches(self, dimension: int, batch_size: int) -> Iterator[tuple[int, np.ndarray]]:
        """Every embedding by position, ``batch_size`` rows at a time, as ``(first position, float32 matrix)``.

        Raises:
            ValueError: A chunk has no embedding, or one of another dimension.
        """
        total = len(self)
        for start in range(0, total, batch_size):
            rows = self._db.execute(
                "SELECT embedding FROM chunks WHERE position >= ? AND position < ? ORDER BY position",
                (start, start + batch_size),
            ).fetchall()
            if any(r[0] is None or len(r[0]) != 4 * dimension for r in rows):
                raise ValueError(f"chunk store {self.path} lacks {dimension}-d embeddings near position {start}")
            yield start, np.frombuffer(b"".join(r[0] for r in rows), np.float32).reshape(len(rows), dimension)

    def embedding_texts(self, batch_size: int = 2048) -> StoredTexts:
        """The embedded text of every chunk, by position, read lazily in batches."""
        return StoredTexts(self, batch_size)

    def chunk_range(self, start: int, stop: int) -> ChunkRange:
        """The chunks at positions ``start`` to ``stop - 1``, read when first used."""
        return ChunkRange(self, start, stop)

    def token_stats(self) -> dict[str, float]:
        """Chunk count, and maximum and mean length in tokens."""
        count, max_tokens, mean_tokens = self._db.execute(
            "SELECT COUNT(*), COALESCE(MAX(tokens), 0), COALESCE(AVG(tokens), 0) FROM chunks"
        ).fetchone()
        docs = self._db.execute("SELECT COUNT(DISTINCT doc_id) FROM chunks").fetchone()[0]
        return {"chunks": int(count), "documents": int(docs), "max_tokens": int(max_tokens),
                "mean_tokens": round(float(mean_tokens), 2)}

    def close(self) -> None:
        """Close this thread's connection."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
            with self._connections_lock:
                self._connections = [c for c in self._connections if c is not connection]

    def close_all(self) -> None:
        """Close every thread's connection (once no thread reads the store any more)."""
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()


class StoredTexts(Sequence[str]):
    """The embedded texts of a chunk store as a read-only sequence, streamed in batches when iterated.

    Keyword backends read their texts through it, so that no build holds every text in a Python list.
    """

    def __init__(self, store: ChunkStore, batch_size: int = 2048) -> None:
        self._store = store
        self._batch = batch_size
        self._length = len(store)

    def __len__(self) -> int:
        return self._length

    def _rows(self, start: int, stop: int) -> list[str]:
        rows = self._store._db.execute(
            "SELECT title, heading, text FROM chunks WHERE position >= ? AND position < ? ORDER BY position",
            (start, stop),
        ).fetchall()
        return [embedding_text(str(t), str(h), str(x)) for t, h, x in rows]

    def __iter__(self) -> Iterator[str]:
        for start in range(0, self._length, self._batch):
            yield from self._rows(start, start + self._batch)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._length)
            rows = self._rows(start, stop) if step > 0 else []
            return rows[::step] if step != 1 else rows
        position = index + self._length if index < 0 else index
        if not 0 <= position < self._length:
            raise IndexError(index)
        return self._rows(position, position + 1)[0]


class ChunkRange(Sequence[Chunk]):
    """Chunks at consecutive positions of a store, fetched on first use (handed to vector backends)."""

    def __init__(self, store: ChunkStore, start: int, stop: int) -> None:
        self._store, self._start, self._stop = store, start, stop
        self._chunks: list[Chunk] | None = None

    def _load(self) -> list[Chunk]:
        if self._chunks is None:
            found = self._store.get(range(self._start, self._stop))
            self._chunks = [found[p] for p in range(self._start, self._stop)]
        return self._chunks

    def __len__(self) -> int:
        return self._stop - self._start

    @overload
    def __getitem__(self, index: int) -> Chunk: ...

    @overload
    def __getitem__(self, index: slice) -> list[Chunk]: ...

    def __getitem__(self, index: int | slice) -> Chunk | list[Chunk]:
        return self._load()[index]

    def __iter__(self) -> Iterator[Chunk]:
        return iter(self._load())


class ChunkStoreWriter:
    """Writes a chunk store as a build goes: chunks first, then embeddings a batch at a time.

    Every :meth:`commit` is a checkpoint: a build killed later keeps what was committed, and the next
    build takes the embeddings back with :meth:`reuse_embeddings` instead of computing them again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path)
        self._next = int(self._db.execute("SELECT COALESCE(MAX(position) + 1, 0) FROM chunks").fetchone()[0])

    @classmethod
    def create(cls, directory: Path) -> ChunkStoreWriter:
        """Create an empty ``chunks.sqlite`` in the directory and open it for writing."""
        path = directory / ChunkStore.FILE
        connection = sqlite3.connect(path)
        try:
            connection.executescript(_SCHEMA)
        finally:
            connection.close()
        return cls(path)

    def add_chunks(self, chunks: Iterable[Chunk], start: int | None = None) -> int:
        """Append chunks (without embeddings) at the next positions, or from ``start``; returns how many."""
        if start is not None:
            self._next = start
        rows: list[tuple[object, ...]] = []
        tags: list[tuple[int, str]] = []
        for chunk in chunks:
            position = self._next + len(rows)
            rows.append((
                position, chunk.id, chunk.doc_id, chunk.title, chunk.heading, chunk.text, chunk.position,
                chunk.tokens, json.dumps(list(chunk.tags)), text_hash(chunk.embedding_text), None,
                chunk.source_type, chunk.path, chunk.url, chunk.page, chunk.cell,
            ))
            tags.extend((position, tag) for tag in chunk.tags)
        self._db.executemany("INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        self._db.executemany("INSERT INTO chunk_tags VALUES (?, ?)", tags)
        self._next += len(rows)
        return len(rows)

    def __len__(self) -> int:
        return self._next

    def missing(self, limit: int, after: int = -1) -> list[tuple[int, str]]:
        """Up to ``limit`` chunks past position ``after`` that have no embedding yet, as ``(position, text)``."""
        rows = self._db.execute(
            "SELECT position, title, heading, text FROM chunks WHERE position > ? AND embedding IS NULL "
            "ORDER BY position LIMIT ?",
            (after, limit),
        ).fetchall()
        return [(int(p), embedding_text(str(t), str(h), str(x))) for p, t, h, x in rows]

    def count_missing(self) -> int:
        """How many chunks have no embedding yet."""
        return int(self._db.execute("SELECT COUNT(*) FROM chunks WHERE embedding IS NULL").fetchone()[0])

    def set_embeddings(self, positions: Iterable[int], vectors: np.ndarray) -> None:
        """Store the embeddings of the chunks at these positions (row ``i`` for the ``i``-th position)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._db.executemany(
            "UPDATE chunks SET embedding = ? WHERE position = ?",
            ((vectors[i].tobytes(), int(p)) for i, p in enumerate(positions)),
        )

    def reuse_embeddings(self, source: Path, dimension: int) -> int:
        """Copy embeddings from another chunk store for chunks whose embedded text has the same hash.

        Only rows of ``dimension`` float32 values are taken; chunks that already have one keep it.

        Returns:
            How many chunks received an embedding.
        """
        size = 4 * dimension
        self._db.execute("ATTACH DATABASE ? AS source", (f"file:{source}?mode=ro",))
        try:
            changed = self._db.execute(
                """UPDATE chunks SET embedding = (
                       SELECT s.embedding FROM source.chunks s
                       WHERE s.text_hash = chunks.text_hash AND length(s.embedding) = ? LIMIT 1)
                   WHERE embedding IS NULL AND text_hash IN (
                       SELECT text_hash FROM source.chunks WHERE length(embedding) = ?)""",
                (size, size),
            ).rowcount
            self._db.commit()
        finally:
            self._db.execute("DETACH DATABASE source")
        return int(changed)

    @classmethod
    def copy_of(cls, source: Path, directory: Path) -> ChunkStoreWriter:
        """Copy a store's file into ``directory`` and open the copy for in-place edits.

        The copy is a new version's scratch file, flushed when the version is published, so it is written
        without a journal or syncs (a failed update removes the whole folder).
        """
        path = directory / ChunkStore.FILE
        shutil.copyfile(source, path)
        writer = cls(path)
        writer._db.execute("PRAGMA journal_mode=OFF")
        writer._db.execute("PRAGMA synchronous=OFF")
        return writer

    def remove_documents(self, doc_ids: Collection[str]) -> None:
        """Delete every chunk (and its tags) of these documents."""
        wanted = sorted(doc_ids)
        marks = ",".join("?" * len(wanted))
        if wanted:
            self._db.execute(f"DELETE FROM chunk_tags WHERE position IN "
                             f"(SELECT position FROM chunks WHERE doc_id IN ({marks}))", wanted)
            self._db.execute(f"DELETE FROM chunks WHERE doc_id IN ({marks})", wanted)

    def shift_ranges(self, moves: Sequence[tuple[int, int, int]]) -> None:
        """Move runs of chunks (and their tags): ``(start, count, delta)`` moves positions ``start`` to
        ``start + count - 1`` by ``delta``. The runs are taken apart first (negated), so no move collides with
        a position another run is leaving.
        """
        for table in ("chunk_tags", "chunks"):
            for start, count, delta in moves:
                self._db.execute(f"UPDATE {table} SET position = -1 - (position + ?) WHERE position >= ? AND "
                                 "position < ?", (delta, start, start + count))
            if moves:
                self._db.execute(f"UPDATE {table} SET position = -1 - position WHERE position < 0")

    def copy_documents(self, source: Path, moves: Sequence[tuple[str, int]]) -> int:
        """Copy whole documents (rows, embeddings and tags) from another store, shifting their positions.

        Args:
            source: The other store's file.
            moves: ``(doc_id, delta)``: every chunk of the document moves from position ``p`` to ``p + delta``.

        Returns:
            How many chunks were copied.
        """
        self._db.execute("ATTACH DATABASE ? AS source", (f"file:{source}?mode=ro",))
        try:
            self._db.execute("CREATE TEMP TABLE moves (doc_id TEXT PRIMARY KEY, delta INTEGER NOT NULL)")
            self._db.executemany("INSERT INTO temp.moves VALUES (?, ?)", moves)
            present = {str(r[1]) for r in self._db.execute("PRAGMA source.table_info(chunks)")}
            extra = ", ".join(
                f"o.{name}" if name in present else f"{default}"
                for name, default in ChunkStore._LOCATION_COLUMNS.items()
            )
            copied = self._db.execute(
                "INSERT INTO chunks SELECT o.position + m.delta, o.id, o.doc_id, o.title, o.heading, o.text, "
                f"o.chunk_index, o.tokens, o.tags, o.text_hash, o.embedding, {extra} "
                "FROM source.chunks o JOIN temp.moves m ON m.doc_id = o.doc_id ORDER BY o.position"
            ).rowcount
            self._db.execute(
                "INSERT INTO chunk_tags SELECT t.position + m.delta, t.tag FROM source.chunk_tags t "
                "JOIN source.chunks o ON o.position = t.position JOIN temp.moves m ON m.doc_id = o.doc_id"
            )
            self._db.execute("DROP TABLE temp.moves")
            self._db.commit()
        finally:
            self._db.execute("DETACH DATABASE source")
        return int(copied)

    def token_stats(self) -> tuple[int, float]:
        """The longest and mean chunk length in tokens."""
        longest, mean = self._db.execute(
            "SELECT COALESCE(MAX(tokens), 0), COALESCE(AVG(tokens), 0) FROM chunks"
        ).fetchone()
        return int(longest), float(mean)

    def commit(self) -> None:
        """Make everything written so far durable (a checkpoint)."""
        self._db.commit()

    def close(self) -> None:
        """Commit and close the connection."""
        self._db.commit()
        self._db.close()


def has_embeddings(path: Path) -> bool:
    """Whether a chunk store file exists and holds at least one embedding."""
    if not path.is_file():
        return False
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = connection.execute("SELECT EXISTS(SELECT 1 FROM chunks WHERE embedding IS NOT NULL)").fetchone()
    finally:
        connection.close()
    return bool(row[0])


def check_store(path: Path) -> str | None:
    """Why a chunk store cannot be trusted (unreadable, or failing SQLite's integrity check), or None.

    Opening it read-write lets SQLite roll back a transaction that a killed process left half done.
    """
    try:
        connection = sqlite3.connect(path)
        try:
            result = connection.execute("PRAGMA quick_check").fetchone()
            connection.execute("SELECT text_hash, embedding FROM chunks LIMIT 1").fetchall()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return str(exc)
    if not result or result[0] != "ok":
        return f"integrity check failed: {result[0] if result else 'no answer'}"
    return None
