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

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from indexing.backends.base import Piece, SplicingKeywordIndex, SplicingVectorIndex
from indexing.backends.configs import given_config
from indexing.backends.registry import keyword_backend, vector_backend
from indexing.build import BACKEND_BATCH, Laps, embed_chunks, fit_backend
from indexing.chunking import Chunker, ChunkingConfig
from indexing.chunks import Chunk
from indexing.docstore import DocumentStore, StoredChange, state_dir_for
from indexing.document import Document
from indexing.embedding import Encoder, library_versions
from indexing.integrity import storage_error
from indexing.layout import (
    VersionLease,
    build_lock,
    current_version_dir,
    derived_version,
    new_build_dir,
    publish,
    remove_stale_builds,
)
from indexing.manifest import Manifest
from indexing.neighbours import NeighbourGraph, VectorSource, compute_graph, splice_graph
from indexing.store import ChunkStore, ChunkStoreWriter, has_embeddings
from mlsearch.catalog import KEYWORD_BACKEND_NAMES, smooths_any
from mlsearch.configs import BuildConfig
from mlsearch.errors import DocumentNotFoundError, IndexNotBuiltError, MlsearchError

logger = logging.getLogger(__name__)
DOCUMENT_SEQ = "document_seq"
#: The refit thread's niceness (where the OS has per-thread priorities): updates and searches go first.
REFIT_NICENESS = 10


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
    timings: dict[str, float] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # CPU time of the thread that ran it (its wall time on an idle machine, about)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return asdict(self)


def document_seq(manifest: Manifest) -> int:
    """The last document-store write that an index version contains (0 when none)."""
    return int(manifest.corpus.get(DOCUMENT_SEQ, 0) or 0)


def new_version_name(tag: str) -> str:
    """A fresh, sortable version name: the time, then a short tag."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{tag}"


def _splice_backend(
    previous: Path, directory: Path, name: str, configs: Mapping[str, object], pieces: Sequence[Piece],
    fresh_texts: Sequence[str], fresh_vectors: np.ndarray,
) -> dict[str, object] | None:
    """Derive a backend from its previous version and the fresh chunks alone; None when it cannot splice.

    A backend splices when it has a ``splice`` method (:class:`SplicingKeywordIndex`,
    :class:`SplicingVectorIndex`) and its previous version can be loaded and spliced (a ``ValueError`` from
    ``splice`` means it cannot, e.g. a BM25 index saved before it kept its terms).
    """
    keyword = name in KEYWORD_BACKEND_NAMES
    cls = keyword_backend(name) if keyword else vector_backend(name)
    if not hasattr(cls, "splice") or not (previous / name).is_dir():
        return None
    config = given_config(name, configs)
    try:
        index = cls.load(previous / name, config)  # type: ignore[arg-type]
        if keyword:
            assert isinstance(index, SplicingKeywordIndex)
            index.splice(pieces, fresh_texts)
        else:
            assert isinstance(index, SplicingVectorIndex)
            index.splice(pieces, fresh_vectors)
    except (ValueError, IndexNotBuiltError) as exc:
        logger.info("backend %s is rebuilt rather than spliced: %s", name, exc)
        return None
    index.save(directory / name)
    return index.describe()


def pending_refits(manifest: Manifest) -> list[str]:
    """The backends of a version that updates spliced approximately (LSI's folded texts, Annoy's overlay)."""
    return [name for name, info in manifest.backends.items() if int(info.get("pending_refit", 0) or 0) > 0]


def _layout(
    spans: dict[str, tuple[int, int]], changed: set[str], fresh: dict[str, list[Chunk]]
) -> tuple[list[tuple[str, int]], list[Piece]]:
    """The new version's documents in id order with their chunk counts, and its runs of kept and fresh positions.

    A full build orders documents by id and chunks by their order in the document; so does an update.
    """
    layout = sorted({**{d: n for d, (_, n) in spans.items() if d not in changed},
                     **{d: len(c) for d, c in fresh.items() if c}}.items())
    pieces: list[Piece] = []
    for doc_id, count in layout:
        start = None if doc_id in fresh else spans[doc_id][0]
        last = pieces[-1] if pieces else None
        if last is not None and (start is None) == (last.start is None) and (
            start is None or last.start + last.count == start  # type: ignore[operator]
        ):
            pieces[-1] = Piece(last.count + count, last.start)
        else:
            pieces.append(Piece(count, start))
    return layout, pieces


#: An update moves at most this many unchanged chunks in a copy of the store's file; past it, it copies the
#: rows into a new file (moving a row's position in SQLite rewrites the row, copying rows is cheaper then).
IN_PLACE_MOVES = 2000


def _write_store(
    build_dir: Path, source: Path, spans: dict[str, tuple[int, int]], layout: Sequence[tuple[str, int]],
    fresh: dict[str, list[Chunk]], vectors: dict[str, np.ndarray],
) -> None:
    """The new chunk store: untouched documents kept (shifted where needed), changed ones written anew.

    When few unchanged chunks change position (an edit that keeps its chunk count, a document added near the
    end), the previous file is copied and edited in place; otherwise untouched documents are copied row by
    row inside SQLite into a new file.
    """
    moves: list[tuple[str, int]] = []
    starts: dict[str, int] = {}
    position = 0
    for doc_id, count in layout:
        if doc_id in fresh:
            starts[doc_id] = position
        else:
            moves.append((doc_id, position - spans[doc_id][0]))
        position += count
    shifted = [(spans[doc_id][0], spans[doc_id][1], delta) for doc_id, delta in moves if delta]
    if sum(count for _, count, _ in shifted) <= IN_PLACE_MOVES:
        writer = ChunkStoreWriter.copy_of(source, build_dir)
        try:
            kept = {doc_id for doc_id, _ in moves}
            writer.remove_documents([doc_id for doc_id in spans if doc_id not in kept])
            writer.shift_ranges(shifted)
            _add_fresh(writer, starts, fresh, vectors)
        finally:
            writer.close()
        return
    writer = ChunkStoreWriter.create(build_dir)
    try:
        writer.copy_documents(source, moves)
        _add_fresh(writer, starts, fresh, vectors)
    finally:
        writer.close()


def _add_fresh(
    writer: ChunkStoreWriter, starts: dict[str, int], fresh: dict[str, list[Chunk]], vectors: dict[str, np.ndarray]
) -> None:
    for doc_id, start in starts.items():
        writer.add_chunks(fresh[doc_id], start=start)
        writer.set_embeddings(range(start, start + len(fresh[doc_id])), vectors[doc_id])
    writer.commit()


def apply_changes(
    config: BuildConfig, encoder: Encoder, changes: Sequence[StoredChange], index_dir: Path | None = None,
    version: str | None = None,
) -> UpdateSummary:
    """Apply document writes to the current index version and publish the result as a new version.

    Args:
        config: Backend configs, batches, versions kept (chunking comes from the index's manifest, so chunks
            match the build).
        encoder: The index's model.
        changes: The latest write of each changed document (a None document deletes it).
        index_dir: The index (``config.index_dir`` by default).
        version: The new version's name (a fresh one by default).

    Returns:
        What changed; ``embedded`` counts the chunks whose text had to be embedded.

    Raises:
        IndexNotBuiltError: There is no index to update.
        ModelMismatchError: ``encoder`` is not the index's model.
    """
    index_dir = Path(index_dir or config.index_dir)
    with build_lock(index_dir):  # never alongside a full build of the same index
        return _apply_locked(config, encoder, changes, index_dir, version)


def _apply_locked(
    config: BuildConfig, encoder: Encoder, changes: Sequence[StoredChange], index_dir: Path, version: str | None,
) -> UpdateSummary:
    started, cpu_started = time.perf_counter(), time.thread_time()
    lap = Laps(started)
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
    layout, pieces = _layout(spans, set(latest), fresh)
    in_order = [doc_id for doc_id, _ in layout if doc_id in fresh]  # fresh chunks in their new position order
    new_chunks = [chunk for doc_id in in_order for chunk in fresh[doc_id]]
    new_vectors, reused_new = embed_chunks(new_chunks, encoder, previous, config.batch_size, False)
    by_doc: dict[str, np.ndarray] = {}
    offset = 0
    for doc_id in in_order:
        by_doc[doc_id] = new_vectors[offset : offset + len(fresh[doc_id])]
        offset += len(fresh[doc_id])
    embedded = len(new_chunks) - reused_new
    seq = max([document_seq(manifest), *(c.seq for c in latest.values())])
    lap("chunk_and_embed")
    remove_stale_builds(index_dir)
    build_dir = new_build_dir(index_dir, version or new_version_name("update"))
    try:
        _write_store(build_dir, source, spans, layout, fresh, by_doc)
        lap("store")
        store = ChunkStore(build_dir / ChunkStore.FILE)
        try:
            chunks = len(store)
            fingerprint = store.ids_fingerprint()
            documents = len(layout)
            described = _update_backends(
                current, build_dir, list(manifest.backends), config.backend_configs, encoder.dimension, store,
                pieces, [chunk.embedding_text for chunk in new_chunks], new_vectors, lap,
            )
            _update_graph(current, build_dir, list(manifest.backends), store, encoder.dimension, pieces, lap)
        finally:
            store.close()
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
            "counts": {"documents": documents, "chunks": chunks, "embedded": embedded, "reused": chunks - embedded},
            "library_versions": library_versions(),
        }).save(build_dir)
        publish(index_dir, build_dir, keep=config.keep_versions)
        lap("publish")
    except BaseException as exc:
        shutil.rmtree(build_dir, ignore_errors=True)
        if (disk := storage_error(exc, index_dir)) is not None:
            raise disk from exc
        raise
    deleted = sorted(d for d, c in latest.items() if c.document is None)
    return UpdateSummary(
        version=version, previous_version=manifest.version, document_seq=seq,
        changed=sorted(d for d, c in latest.items() if c.document is not None), deleted=deleted,
        documents=documents, chunks=chunks, embedded=embedded, reused=chunks - embedded,
        seconds=round(time.perf_counter() - started, 3), timings=lap.timings,
        cpu_seconds=round(time.thread_time() - cpu_started, 3),
    )


def _stored_vectors(store: ChunkStore, dimension: int) -> VectorSource | None:
    """The new version's embeddings for the neighbour graph, streamed from its chunk store in batches or read at
    chosen positions (never held whole); None when not every chunk has one."""
    if store.embedded_count(dimension) != len(store):
        return None

    def rows(positions: np.ndarray) -> np.ndarray:
        wanted = np.asarray(positions, np.int64)
        found = store.embeddings_at(wanted.tolist())
        if any(int(p) not in found for p in wanted):
            raise ValueError(f"chunk store {store.path} lacks embeddings at some of {len(wanted)} positions")
        return np.array([found[int(p)] for p in wanted], np.float32).reshape(len(wanted), dimension)

    return VectorSource(len(store), dimension, lambda: store.embedding_batches(dimension, BACKEND_BATCH), rows)


def _update_backends(
    previous: Path, build_dir: Path, names: Sequence[str], configs: Mapping[str, object], dimension: int,
    store: ChunkStore, pieces: Sequence[Piece], fresh_texts: Sequence[str], fresh_vectors: np.ndarray,
    lap: Callable[[str], None],
) -> dict[str, dict[str, object]]:
    """Every backend of the new version: spliced from the previous version where it can, else built anew from
    the new version's chunk store."""
    described: dict[str, dict[str, object]] = {}
    for name in names:
        info = _splice_backend(previous, build_dir, name, configs, pieces, fresh_texts, fresh_vectors)
        if info is None:
            index = fit_backend(name, given_config(name, configs), dimension, store)
            index.save(build_dir / name)
            info = index.describe()
        described[name] = info
        lap(f"backend_{name}")
    return described


def _update_graph(
    previous: Path, build_dir: Path, backends: Sequence[str], store: ChunkStore, dimension: int,
    pieces: Sequence[Piece], lap: Callable[[str], None],
) -> None:
    """The new version's neighbour graph: the previous version's spliced (:func:`splice_graph`), or computed
    when it has none; nothing when no backend is smoothed over it."""
    if not smooths_any(backends):
        return
    try:
        old = NeighbourGraph.load(previous)
    except (OSError, ValueError) as exc:
        logger.warning("the neighbour graph of %s is unreadable (%s); it is computed again", previous.name, exc)
        old = None
    source = _stored_vectors(store, dimension)
    if source is None:
        return  # not every chunk has an embedding: nothing to compute it from
    graph = None
    if old is not None:
        try:
            graph = splice_graph(old, pieces, source)
        except ValueError as exc:
            logger.warning("the neighbour graph of %s does not fit it (%s); it is computed again", previous.name, exc)
    graph = graph or compute_graph(source.batches, source.count, source.dimension)
    graph.save(build_dir)
    lap("neighbour_graph")


def refit_pending(config: BuildConfig, index_dir: Path | None = None) -> UpdateSummary | None:
    """Refit the backends that updates spliced approximately (LSI, Annoy) and publish the result.

    The refit reads the current version's texts without holding the build lock, so document updates keep
    publishing meanwhile; the result is published only if that version is still the current one (otherwise
    None: the newer version is refitted in its turn). The new version hard-links every other file of the one
    it refits, so it costs the refit and little more. Afterwards the index equals a clean rebuild.

    Args:
        config: Backend configs and versions kept.
        index_dir: The index (``config.index_dir`` by default).

    Returns:
        The refit's summary (no document changed), or None when nothing was pending or a newer version won.
    """
    index_dir = Path(index_dir or config.index_dir)
    started = time.perf_counter()
    current = current_version_dir(index_dir)
    manifest = Manifest.load(current)
    names = pending_refits(manifest)
    if not names:
        return None
    lease = VersionLease(current)  # no update prunes the version while its texts are read
    try:
        # BLAS on the calling thread alone: its pool's threads would not share the refit thread's niceness
        store, limits = ChunkStore(current / ChunkStore.FILE), threadpool_limits(limits=1, user_api="blas")
        try:
            fitted = {
                name: fit_backend(name, given_config(name, config.backend_configs), manifest.model.dimension, store)
                for name in names
            }
        finally:
            store.close()
            limits.restore_original_limits()
    finally:
        lease.release()
    fit_seconds = round(time.perf_counter() - started, 3)
    with build_lock(index_dir):
        if current_version_dir(index_dir) != current:
            logger.info("refit of %s discarded: a newer version was published meanwhile", current.name)
            return None
        version = new_version_name(str(manifest.corpus.get("fingerprint", ""))[:8])
        with derived_version(index_dir, current, version, names, config.keep_versions) as build_dir:
            for name, index in fitted.items():
                index.save(build_dir / name)
            manifest.model_copy(update={
                "version": version,
                "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "build_seconds": round(time.perf_counter() - started, 3),
                "corpus": {**manifest.corpus, "updated_from": manifest.version},
                "backends": {**manifest.backends, **{name: index.describe() for name, index in fitted.items()}},
            }).save(build_dir)
    chunks = int(manifest.counts.get("chunks", 0))
    return UpdateSummary(
        version=version, previous_version=manifest.version, document_seq=document_seq(manifest), changed=[],
        deleted=[], documents=int(manifest.counts.get("documents", 0)), chunks=chunks, embedded=0, reused=chunks,
        seconds=round(time.perf_counter() - started, 3),
        timings={"refit": fit_seconds, "publish": round(time.perf_counter() - started - fit_seconds, 3)},
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

    An update folds new texts into LSI rather than fitting it again; a second background thread refits it
    (:func:`refit_pending`, or at once with :meth:`refit`) once no write has come for ``refit_delay_s``, and
    publishes that version too, so that the index ends equal to a clean rebuild. Updates never wait for it.

    Args:
        config: The index and state directories, backend configs, the refit delay.
        encoder: Returns the index's model when an update needs it.
        coalesce_s: How long to wait for more writes before updating.
        on_published: Called with each update's (and refit's) summary once its version is published.
        refit_delay_s: Quiet time before a refit (``config.refit_delay_s`` by default).
    """

    def __init__(
        self, config: BuildConfig, encoder: Callable[[], Encoder], coalesce_s: float = 0.2,
        on_published: Callable[[UpdateSummary], None] | None = None, refit_delay_s: float | None = None,
    ) -> None:
        self.config = config
        self.index_dir = Path(config.index_dir)
        self.store = DocumentStore.in_state_dir(state_dir_for(config.state_dir, self.index_dir))
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
        self.last_summary: UpdateSummary | None = None  # the latest update or refit that published
        self.refit_delay_s = config.refit_delay_s if refit_delay_s is None else refit_delay_s
        self._refit_lock = threading.Lock()  # one refit at a time
        self._refit_wake = threading.Event()
        self._refit_thread: threading.Thread | None = None
        self._last_write = time.monotonic()

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
            self._last_write = time.monotonic()
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
            self._last_write = time.monotonic()
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
                summary = apply_changes(self.config, self._encoder(), changes, self.index_dir, version)
            except Exception as exc:
                with self._lock:
                    self._pending_version = self._pending_version or version
                self.last_error = str(exc)
                raise
            self.last_error = None
        logger.info("index updated to %s: %d changed, %d deleted, %d chunks embedded in %.2fs %s", summary.version,
                    len(summary.changed), len(summary.deleted), summary.embedded, summary.seconds, summary.timings)
        self.last_summary = summary
        self._refit_wake.set()
        if self.on_published is not None:
            self.on_published(summary)
        return summary

    def refit(self) -> UpdateSummary | None:
        """Refit what updates folded in (LSI) and publish it, now; None when nothing was pending.

        Returns None too when an update published a newer version during the refit (that one is refitted next).
        """
        with self._refit_lock:
            summary = refit_pending(self.config, self.index_dir)
        if summary is None:
            return None
        logger.info("index refitted as %s in %.2fs", summary.version, summary.seconds)
        self.last_summary = summary
        if self.on_published is not None:
            self.on_published(summary)
        return summary

    def refit_due(self) -> bool:
        """Whether the published version holds folded-in texts that a refit would change (False without an index)."""
        try:
            return bool(pending_refits(Manifest.load(current_version_dir(self.index_dir))))
        except (MlsearchError, OSError):
            return False

    def start(self) -> None:
        """Start the background thread (it also applies writes stored before a crash)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._wake.set()
        self._refit_wake.set()
        self._thread = threading.Thread(target=self._loop, name="mlsearch-updater", daemon=True)
        self._thread.start()
        self._refit_thread = threading.Thread(target=self._refit_loop, name="mlsearch-refit", daemon=True)
        self._refit_thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the background thread after the update in progress (pending writes stay stored)."""
        self._stop.set()
        self._wake.set()
        self._refit_wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._refit_thread is not None:
            self._refit_thread.join(timeout)
            self._refit_thread = None

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
                self._retry_later(self._wake, min(30.0, 0.5 * 2**failures), "incremental index update failed")

    def _refit_loop(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # Linux: a thread is a task with its own niceness
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), REFIT_NICENESS)
        failures = 0
        while not self._stop.is_set():
            self._refit_wake.wait()
            self._refit_wake.clear()
            while not self._stop.is_set() and (quiet := time.monotonic() - self._last_write) < self.refit_delay_s:
                self._stop.wait(self.refit_delay_s - quiet)
            if self._stop.is_set():
                return
            try:
                if self.refit_due():
                    self.refit()
                failures = 0
            except Exception:
                failures += 1
                self._retry_later(self._refit_wake, min(60.0, 2.0 * 2**failures), "refit after document updates failed")

    def _retry_later(self, wake: threading.Event, delay: float, what: str) -> None:
        """Log the failure being handled, then wake its loop again after ``delay`` seconds unless stopped."""
        logger.exception("%s; retrying in %.1fs", what, delay)
        if not self._stop.wait(delay):
            wake.set()

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
