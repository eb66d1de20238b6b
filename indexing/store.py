"""The SQLite chunk store: text, metadata and embedding of every chunk, addressed by position."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from indexing.chunks import Chunk

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
    """Read access to ``chunks.sqlite`` (one connection per thread), and :meth:`write` to create it."""

    FILE = "chunks.sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    @classmethod
    def write(cls, directory: Path, chunks: Sequence[Chunk], embeddings: np.ndarray | None) -> ChunkStore:
        """Create the store; chunk ``i`` gets position ``i`` (the id used by every index)."""
        path = directory / cls.FILE
        connection = sqlite3.connect(path)
        try:
            connection.executescript(_SCHEMA)
            rows = (
                (
                    i, c.id, c.doc_id, c.title, c.heading, c.text, c.position, c.tokens,
                    json.dumps(list(c.tags)), text_hash(c.embedding_text),
                    None if embeddings is None else np.asarray(embeddings[i], np.float32).tobytes(),
                    c.source_type, c.path, c.url, c.page, c.cell,
                )
                for i, c in enumerate(chunks)
            )
            connection.executemany("INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            connection.executemany(
                "INSERT INTO chunk_tags VALUES (?, ?)",
                ((i, tag) for i, c in enumerate(chunks) for tag in c.tags),
            )
            connection.commit()
        finally:
            connection.close()
        return cls(path)

    @property
    def _db(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self._local.connection = connection
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
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        rows = self._db.execute(
            f"SELECT position, {self._columns} FROM chunks WHERE position IN ({marks})", wanted
        ).fetchall()
        return {int(r[0]): self._chunk(r[1:]) for r in rows}

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

    def embeddings(self) -> np.ndarray:
        """All embeddings by position, as a float32 matrix (rows of zeros where none was stored)."""
        rows = self._db.execute("SELECT embedding FROM chunks ORDER BY position").fetchall()
        vectors = [np.frombuffer(r[0], np.float32) for r in rows if r[0] is not None]
        return np.vstack(vectors) if vectors and len(vectors) == len(rows) else np.zeros((0, 0), np.float32)

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
