"""The durable document store: documents written through the API or the CLI, until (and after) they are indexed.

One SQLite file (``documents.sqlite`` in the state directory) in WAL mode with ``synchronous=FULL``: a write
returns only after its transaction is on disk, so a crash after the answer loses nothing. Every write (upsert
or delete) gets the next sequence number; an index version records the last sequence it contains
(``corpus.document_seq`` in its manifest), so what is still to be indexed is every row with a higher number.
A delete is kept as a tombstone row, so that a later rebuild from the corpus folder does not bring the
document back.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from indexing.document import Document
from mlsearch.errors import InvalidDocumentIdError

MAX_DOC_ID_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    title TEXT NOT NULL DEFAULT '',
    source_type TEXT NOT NULL DEFAULT '',
    content TEXT NOT NULL DEFAULT '',
    meta TEXT NOT NULL DEFAULT '{}',
    written_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS documents_seq ON documents(seq);
CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY CHECK (id = 0), seq INTEGER NOT NULL);
INSERT OR IGNORE INTO counter VALUES (0, 0);
"""


def check_doc_id(doc_id: str) -> str:
    """Return ``doc_id`` when it is safe as a document id (API and CLI writes).

    Raises:
        InvalidDocumentIdError: Empty, longer than 200 characters, or holding ``/``, ``\\``, ``..`` or a
            control character.
    """
    if not doc_id or not doc_id.strip():
        raise InvalidDocumentIdError("the document id is empty")
    if len(doc_id) > MAX_DOC_ID_CHARS:
        raise InvalidDocumentIdError(f"the document id is longer than {MAX_DOC_ID_CHARS} characters")
    if "/" in doc_id or "\\" in doc_id:
        raise InvalidDocumentIdError(f"the document id {doc_id!r} holds a path separator")
    if ".." in doc_id:
        raise InvalidDocumentIdError(f"the document id {doc_id!r} holds '..'")
    if _CONTROL.search(doc_id):
        raise InvalidDocumentIdError(f"the document id {doc_id!r} holds a control character")
    return doc_id


@dataclass(frozen=True)
class StoredChange:
    """One document's latest write: its document, or None when it was deleted."""

    doc_id: str
    seq: int
    document: Document | None


@dataclass(frozen=True)
class StoredDocument:
    """A row of the store, without its text."""

    doc_id: str
    seq: int
    deleted: bool
    title: str
    source_type: str
    written_at: str


class DocumentStore:
    """Durable upserts and deletes of documents, numbered in the order they were written.

    Args:
        path: The SQLite file (created with its folder when missing).
    """

    FILE = "documents.sqlite"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> DocumentStore:
        """The store of an index, in its state directory."""
        return cls(Path(state_dir) / cls.FILE)

    def _write(self, doc_id: str, deleted: bool, document: Document | None) -> int:
        meta = dict(document.meta) if document is not None else {}
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("UPDATE counter SET seq = seq + 1 WHERE id = 0")
                seq = int(self._db.execute("SELECT seq FROM counter WHERE id = 0").fetchone()[0])
                self._db.execute(
                    "INSERT OR REPLACE INTO documents (doc_id, seq, deleted, title, source_type, content, meta) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (doc_id, seq, int(deleted), str(meta.get("title", "")), str(meta.get("source_type", "")),
                     "" if document is None else document.content or "", json.dumps(meta, default=str)),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return seq

    def put(self, document: Document) -> int:
        """Store (or replace) a document durably; returns its sequence number."""
        return self._write(str(document.meta.get("doc_id", document.id)), False, document)

    def delete(self, doc_id: str) -> int:
        """Record the deletion of a document durably (a tombstone); returns its sequence number."""
        return self._write(doc_id, True, None)

    @property
    def last_seq(self) -> int:
        """The sequence number of the latest write (0 before any)."""
        with self._lock:
            return int(self._db.execute("SELECT seq FROM counter WHERE id = 0").fetchone()[0])

    def changes_after(self, seq: int) -> list[StoredChange]:
        """Every document whose latest write is numbered above ``seq``, in write order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT doc_id, seq, deleted, content, meta FROM documents WHERE seq > ? ORDER BY seq", (seq,)
            ).fetchall()
        return [self._change(row) for row in rows]

    def all_changes(self) -> list[StoredChange]:
        """The latest write of every document the store knows (documents and tombstones)."""
        return self.changes_after(0)

    @staticmethod
    def _change(row: Sequence[object]) -> StoredChange:
        doc_id, seq, deleted, content, meta = row
        document = None if deleted else Document(id=str(doc_id), content=str(content), meta=json.loads(str(meta)))
        return StoredChange(str(doc_id), int(seq), document)  # type: ignore[call-overload]

    def get(self, doc_id: str) -> StoredDocument | None:
        """The store's row for a document, or None when it was never written here."""
        with self._lock:
            row = self._db.execute(
                "SELECT doc_id, seq, deleted, title, source_type, written_at FROM documents WHERE doc_id = ?",
                (doc_id,),
            ).fetchone()
        return None if row is None else StoredDocument(
            str(row[0]), int(row[1]), bool(row[2]), str(row[3]), str(row[4]), str(row[5])
        )

    def __iter__(self) -> Iterator[StoredDocument]:
        with self._lock:
            rows = self._db.execute(
                "SELECT doc_id, seq, deleted, title, source_type, written_at FROM documents ORDER BY doc_id"
            ).fetchall()
        for row in rows:
            yield StoredDocument(str(row[0]), int(row[1]), bool(row[2]), str(row[3]), str(row[4]), str(row[5]))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()


def state_dir_for(state_dir: Path | None, index_dir: Path) -> Path:
    """The state directory of an index: ``state_dir`` when given, else ``<index>-state`` beside the index."""
    if state_dir is not None:
        return state_dir
    index_dir = Path(index_dir)
    return index_dir.parent / f"{index_dir.name}-state"


def stored_overlay(
    documents: Sequence[Document], state_dir: Path | None, index_dir: Path
) -> tuple[list[Document], int]:
    """A corpus's documents with the index's document store applied, sorted by id, and the store's last write.

    Without a document store the documents are only sorted (and the last write is 0).

    Args:
        documents: The corpus's documents.
        state_dir: The state directory (``<index>-state`` beside the index when None).
        index_dir: The index.
    """
    path = state_dir_for(state_dir, index_dir) / DocumentStore.FILE
    if not path.is_file():
        return sorted(documents, key=lambda d: str(d.meta.get("doc_id", d.id))), 0
    store = DocumentStore(path)
    try:
        return apply_overlay(documents, store.all_changes()), store.last_seq
    finally:
        store.close()


def apply_overlay(documents: Sequence[Document], changes: Sequence[StoredChange]) -> list[Document]:
    """A corpus's documents with the store's writes on top (replaced, added or deleted), sorted by id."""
    by_id = {str(d.meta.get("doc_id", d.id)): d for d in documents}
    for change in changes:
        if change.document is None:
            by_id.pop(change.doc_id, None)
        else:
            by_id[change.doc_id] = change.document
    return [by_id[key] for key in sorted(by_id)]


@dataclass(frozen=True)
class DocumentStatus:
    """A document as the served index and the document store see it."""

    doc_id: str
    title: str
    source_type: str
    chunks: int
    indexed: bool
    pending: str | None
    seq: int | None


def document_statuses(
    indexed: dict[str, tuple[str, str, int]], stored: Sequence[StoredDocument], served_seq: int
) -> list[DocumentStatus]:
    """Every live document (served or written), sorted by id, saying whether its latest write is served.

    Args:
        indexed: ``doc_id → (title, source_type, chunks)`` of the served version.
        stored: The document store's rows.
        served_seq: The last write the served version contains.
    """
    out: dict[str, DocumentStatus] = {
        doc_id: DocumentStatus(doc_id, title, source, chunks, True, None, None)
        for doc_id, (title, source, chunks) in indexed.items()
    }
    for row in stored:
        served = row.seq <= served_seq
        title, source, chunks = indexed.get(row.doc_id, (row.title, row.source_type, 0))
        if row.deleted and served:
            out.pop(row.doc_id, None)
            continue
        pending = None if served else ("delete" if row.deleted else "upsert")
        out[row.doc_id] = DocumentStatus(
            row.doc_id, row.title if not row.deleted else title, row.source_type if not row.deleted else source,
            chunks, served, pending, row.seq,
        )
    return [out[key] for key in sorted(out)]
