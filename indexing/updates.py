"""Incremental index updates: apply document writes to the current version and publish a new one.

:func:`apply_changes` starts from the version ``index_dir`` points to. Chunks of untouched documents keep their
stored embeddings; a changed document is chunked again and only chunks whose embedded text is new are
embedded (an edited paragraph re-embeds its own chunks only). Every backend of the index is then rebuilt
from the stored vectors and texts (nothing unchanged is embedded again) and the new version is published
with the same atomic link swap as a full build, so searches never see a half-written index. Chunks are
ordered by document id and then by their order in the document, as a full build orders them, so that the
result equals a clean rebuild of the same documents: same chunk ids, same positions, same search results.

:class:`DocumentUpdater` serialises writes, stores them durably (:class:`~indexing.docstore.DocumentStore`)
and applies them from one background thread, coalescing a burst of writes into one update. Each write is
told the name of the version in which it will be visible.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from haystack import Document

from indexing.backends.configs import keyword_config, vector_config
from indexing.backends.registry import keyword_backend, vector_backend
from indexing.build import embed_chunks
from indexing.chunking import Chunker, ChunkingConfig
from indexing.chunks import Chunk
from indexing.docstore import DocumentStore, StoredChange, state_dir_for
from indexing.embedding import Encoder, library_versions
from indexing.integrity import storage_error
from indexing.layout import build_lock, current_version_dir, new_build_dir, publish, remove_stale_builds
from indexing.manifest import Manifest
from indexing.store import ChunkRange, ChunkStore, ChunkStoreWriter, StoredTexts, has_embeddings
from mlsearch.catalog import KEYWORD_BACKEND_NAMES
from mlsearch.errors import DocumentNotFoundError, IndexNotBuiltError
from mlsearch.settings import Settings

logger = logging.getLogger(__name__)
DOCUMENT_SEQ = "document_seq"


@dataclass
class UpdateSummary:
    """What an incremental update did."""

    version: str
    previous_version: str
    document_seq: int
    changed: list[str]
    deleted: list[str]
    documents: int
    chunks: int
    embedded: int
    reused: int
    seconds: float

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return asdict(self)


def document_seq(manifest: Manifest) -> int:
    """The last document-store write that an index version contains (0 when none)."""
    return int(manifest.corpus.get(DOCUMENT_SEQ, 0) or 0)


def new_version_name(tag: str) -> str:
    """A fresh, sortable version name: the time, then a short tag."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{tag}"


def write_backends(
    directory: Path, names: Sequence[str], settings: Settings, dimension: int, chunks: Sequence[Chunk],
    vectors: np.ndarray, texts: Sequence[str] | None = None,
) -> dict[str, dict[str, object]]:
    """Build every named backend over the chunks and their vectors into ``directory``; returns their settings.

    ``texts`` are the chunks' embedded texts for the keyword backends (computed from ``chunks`` when None).
    """
    described: dict[str, dict[str, object]] = {}
    for name in names:
        if name in KEYWORD_BACKEND_NAMES:
            keyword = keyword_backend(name)(keyword_config(name, settings))
            keyword.build(texts if texts is not None else [chunk.embedding_text for chunk in chunks])
            keyword.save(directory / name)
            described[name] = keyword.describe()
        else:
            vector = vector_backend(name)(dimension, vector_config(name, settings))
            vector.add(vectors, chunks)
            vector.save(directory / name)
            described[name] = vector.describe()
    return described


def _write_store(
    build_dir: Path, source: Path, spans: dict[str, tuple[int, int]], changed: set[str],
    fresh: dict[str, list[Chunk]], vectors: dict[str, np.ndarray],
) -> ChunkStore:
    """The new chunk store: untouched documents copied inside SQLite (shifted), changed ones written anew.

    Documents are laid out in id order, chunks in document order, as a full build lays them out; a changed
    document that is not in ``fresh`` is deleted.
    """
    layout = sorted({**{d: n for d, (_, n) in spans.items() if d not in changed},
                     **{d: len(c) for d, c in fresh.items() if c}}.items())
    moves: list[tuple[str, int]] = []
    starts: dict[str, int] = {}
    position = 0
    for doc_id, count in layout:
        if doc_id in fresh:
            starts[doc_id] = position
        else:
            moves.append((doc_id, position - spans[doc_id][0]))
        position += count
    writer = ChunkStoreWriter.create(build_dir)
    try:
        writer.copy_documents(source, moves)
        for doc_id, start in starts.items():
            writer.add_chunks(fresh[doc_id], start=start)
            writer.set_embeddings(range(start, start + len(fresh[doc_id])), vectors[doc_id])
        writer.commit()
    finally:
        writer.close()
    return ChunkStore(build_dir / ChunkStore.FILE)


def apply_changes(
    settings: Settings, encoder: Encoder, changes: Sequence[StoredChange], index_dir: Path | None = None,
    version: str | None = None,
) -> UpdateSummary:
    """Apply document writes to the current index version and publish the result as a new version.

    Args:
        settings: Backend settings (chunking comes from the index's manifest, so chunks match the build).
        encoder: The index's model.
        changes: The latest write of each changed document (a None document deletes it).
        index_dir: The index (``settings.index_dir`` by default).
        version: The new version's name (a fresh one by default).

    Returns:
        What changed; ``embedded`` counts the chunks whose text had to be embedded.

    Raises:
        IndexNotBuiltError: There is no index to update.
        ModelMismatchError: ``encoder`` is not the index's model.
    """
    index_dir = Path(index_dir or settings.index_dir)
    with build_lock(index_dir):  # never alongside a full build of the same index
        return _apply_locked(settings, encoder, changes, index_dir, version)


def _apply_locked(
    settings: Settings, encoder: Encoder, changes: Sequence[StoredChange], index_dir: Path, version: str | None,
) -> UpdateSummary:
    started = time.perf_counter()
    current = current_version_dir(index_dir)
    manifest = Manifest.load(current)
    manifest.check_model(encoder.name, encoder.weights_hash, getattr(encoder, "quantization", None))
    latest = {c.doc_id: c for c in sorted(changes, key=lambda c: c.seq)}
    source = current / ChunkStore.FILE
    old = ChunkStore(source)
    try:
        if not has_embeddings(source):
            raise IndexNotBuiltError(
                f"index {current.name} has no stored embeddings to update from; rebuild it with `mlsearch index build`"
            )
        spans = old.document_spans()
        previous = old.embeddings_of(set(latest) & set(spans))
    finally:
        old.close()
    chunker = Chunker(encoder.count_tokens, ChunkingConfig(**manifest.chunking))
    fresh = {doc_id: chunker.chunk_document(c.document) for doc_id, c in latest.items() if c.document is not None}
    new_chunks = [chunk for doc_chunks in fresh.values() for chunk in doc_chunks]
    new_vectors, reused_new = embed_chunks(new_chunks, encoder, previous, settings.batch_size, False)
    by_doc: dict[str, np.ndarray] = {}
    offset = 0
    for doc_id, doc_chunks in fresh.items():
        by_doc[doc_id] = new_vectors[offset : offset + len(doc_chunks)]
        offset += len(doc_chunks)
    embedded = len(new_chunks) - reused_new
    seq = max([document_seq(manifest), *(c.seq for c in latest.values())])
    remove_stale_builds(index_dir)
    build_dir = new_build_dir(index_dir, version or new_version_name("update"))
    try:
        store = _write_store(build_dir, source, spans, set(latest), fresh, by_doc)
        try:
            ids = store.ids()
            vectors = store.embeddings()
            if not ids:
                vectors = np.zeros((0, encoder.dimension), np.float32)
            documents = len(store.document_spans())
            described = write_backends(
                build_dir, list(manifest.backends), settings, encoder.dimension, ChunkRange(store, 0, len(ids)),
                vectors, StoredTexts(store),
            )
        finally:
            store.close()
        fingerprint = hashlib.sha256("\n".join(ids).encode()).hexdigest()
        if version is None:  # name the version after what it holds, as a full build does
            named = build_dir.with_name(f"{new_version_name(fingerprint[:8])}{build_dir.suffix}")
            build_dir = build_dir.rename(named)
        version = build_dir.name.removesuffix(".tmp")
        manifest.model_copy(update={
            "version": version,
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "build_seconds": round(time.perf_counter() - started, 3),
            "corpus": {**manifest.corpus, "fingerprint": fingerprint, "documents": documents, DOCUMENT_SEQ: seq,
                       "updated_from": manifest.version},
            "backends": described,
            "counts": {"documents": documents, "chunks": len(ids), "embedded": embedded,
                       "reused": len(ids) - embedded},
            "library_versions": library_versions(),
        }).save(build_dir)
        publish(index_dir, build_dir, keep=settings.keep_versions)
    except BaseException as exc:
        shutil.rmtree(build_dir, ignore_errors=True)
        if (disk := storage_error(exc, index_dir)) is not None:
            raise disk from exc
        raise
    deleted = sorted(d for d, c in latest.items() if c.document is None)
    return UpdateSummary(
        version=version, previous_version=manifest.version, document_seq=seq,
        changed=sorted(d for d, c in latest.items() if c.document is not None), deleted=deleted,
        documents=documents, chunks=len(ids), embedded=embedded, reused=len(ids) - embedded,
        seconds=round(time.perf_counter() - started, 3),
    )


@dataclass(frozen=True)
class WriteReceipt:
    """The answer to a write: its sequence number and the index version in which it will be visible."""

    doc_id: str
    seq: int
    visible_in_version: str
    deleted: bool = False


class DocumentUpdater:
    """Takes document writes, stores them durably, and applies them to the index in coalesced updates.

    Writes are serialised by one lock: each is stored (fsync'd) and told the name of the next version,
    which a background thread publishes after ``coalesce_s`` of quiet (or at once with :meth:`run_pending`).
    Writes that arrive while an update runs go into the version after it.

    Args:
        settings: Settings (index and state directories, backends).
        encoder: Returns the index's model when an update needs it.
        coalesce_s: How long to wait for more writes before updating.
        on_published: Called with each update's summary once its version is published.
    """

    def __init__(
        self, settings: Settings, encoder: Callable[[], Encoder], coalesce_s: float = 0.2,
        on_published: Callable[[UpdateSummary], None] | None = None,
    ) -> None:
        self.settings = settings
        self.index_dir = Path(settings.index_dir)
        self.store = DocumentStore.in_state_dir(state_dir_for(settings, self.index_dir))
        self._encoder = encoder
        self.coalesce_s = coalesce_s
        self.on_published = on_published
        self._lock = threading.Lock()  # serialises writes and the hand-over of a batch
        self._update_lock = threading.Lock()  # one update at a time
        self._pending_version: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    # -- writes ---------------------------------------------------------------------------------------
    def _next_version(self, seq: int) -> str:
        if self._pending_version is None:
            self._pending_version = new_version_name(f"d{seq}")
        return self._pending_version

    def put(self, document: Document) -> WriteReceipt:
        """Store a document durably (replacing one with its id) and schedule its indexing."""
        doc_id = str(document.meta.get("doc_id", document.id))
        with self._lock:
            seq = self.store.put(document)
            version = self._next_version(seq)
        self._wake.set()
        return WriteReceipt(doc_id, seq, version)

    def delete(self, doc_id: str) -> WriteReceipt:
        """Record a document's deletion durably and schedule it.

        Raises:
            DocumentNotFoundError: The document is neither in the index nor in the store.
        """
        with self._lock:
            if not self.exists(doc_id):
                raise DocumentNotFoundError(f"no document with id {doc_id!r}")
            seq = self.store.delete(doc_id)
            version = self._next_version(seq)
        self._wake.set()
        return WriteReceipt(doc_id, seq, version, deleted=True)

    def exists(self, doc_id: str) -> bool:
        """Whether a document exists now: written to the store (and not deleted since), or in the index."""
        row = self.store.get(doc_id)
        if row is not None:
            return not row.deleted
        return doc_id in self.indexed_documents()

    def indexed_documents(self) -> dict[str, tuple[str, str, int]]:
        """``doc_id → (title, source_type, chunks)`` in the published index version."""
        store = ChunkStore(current_version_dir(self.index_dir) / ChunkStore.FILE)
        try:
            return {doc_id: (title, source, count) for doc_id, title, source, count in store.documents()}
        finally:
            store.close()

    def indexed_seq(self) -> int:
        """The last write contained in the published index version."""
        return document_seq(Manifest.load(current_version_dir(self.index_dir)))

    # -- updates --------------------------------------------------------------------------------------
    def run_pending(self) -> UpdateSummary | None:
        """Apply every stored write that the published version lacks, as one update (None if none)."""
        if self.store.last_seq == 0:  # nothing was ever written (or no index yet): nothing to read
            return None
        with self._update_lock:
            with self._lock:
                version = self._pending_version
                self._pending_version = None
                changes = self.store.changes_after(self.indexed_seq())
            if not changes:
                return None
            try:
                summary = apply_changes(self.settings, self._encoder(), changes, self.index_dir, version)
            except Exception as exc:
                with self._lock:
                    self._pending_version = self._pending_version or version
                self.last_error = str(exc)
                raise
            self.last_error = None
        logger.info("index updated to %s: %d changed, %d deleted, %d chunks embedded", summary.version,
                    len(summary.changed), len(summary.deleted), summary.embedded)
        if self.on_published is not None:
            self.on_published(summary)
        return summary

    def start(self) -> None:
        """Start the background thread (it also applies writes stored before a crash)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._wake.set()
        self._thread = threading.Thread(target=self._loop, name="mlsearch-updater", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the background thread after the update in progress (pending writes stay stored)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.is_set():
                return
            time.sleep(self.coalesce_s)
            self._wake.clear()
            try:
                self.run_pending()
                failures = 0
            except Exception:
                failures += 1
                delay = min(30.0, 0.5 * 2**failures)
                logger.exception("incremental index update failed; retrying in %.1fs", delay)
                if not self._stop.wait(delay):
                    self._wake.set()

    def wait_until_indexed(self, seq: int, timeout: float = 60.0) -> bool:
        """Wait until the published version contains write ``seq``; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.indexed_seq() >= seq:
                return True
            time.sleep(0.02)
        return self.indexed_seq() >= seq

    def close(self) -> None:
        """Stop and close the store."""
        self.stop()
        self.store.close()
