"""The indexing pipeline: corpus → cleaned documents → chunks → embeddings → backends, swapped in atomically."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from indexing.backends.base import KeywordIndex, VectorIndex
from indexing.backends.configs import given_config
from indexing.backends.registry import keyword_backend, parse_backends, vector_backend
from indexing.checkpoint import CHECKPOINT_FILE, usable_checkpoints, write_checkpoint_info
from indexing.chunking import Chunker, ChunkingConfig
from indexing.chunks import Chunk
from indexing.docstore import DocumentStore, StoredChange, state_dir_for
from indexing.document import Document
from indexing.documents import CorpusFile, SkippedFile, iter_corpus
from indexing.embedding import Encoder, encoder_info, library_versions
from indexing.integrity import storage_error
from indexing.layout import (
    TMP_SUFFIX,
    build_lock,
    current_version_dir,
    new_build_dir,
    publish,
    remove_stale_builds,
)
from indexing.manifest import Manifest, ModelInfo
from indexing.neighbours import compute_graph
from indexing.store import ChunkStore, ChunkStoreWriter, has_embeddings, text_hash
from mlsearch.catalog import KEYWORD_BACKEND_NAMES, smooths_any
from mlsearch.configs import BuildConfig
from mlsearch.errors import CorpusError

logger = logging.getLogger(__name__)
Progress = Callable[[str], None]
BACKEND_BATCH = 65_536
"""Vectors handed to a vector backend per ``add`` call while it is built from the chunk store."""
LINEAGE_FILE = "mlsearch_lineage.json"


@dataclass
class BuildSummary:
    """What a build did, as printed by ``mlsearch index build --json``."""

    index_dir: str
    version: str
    documents: int
    skipped: list[dict[str, str]]
    chunks: int
    embedded: int
    reused: int
    resumed: int
    backends: list[str]
    max_tokens: int
    mean_tokens: float
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return asdict(self)


def chunking_config(config: BuildConfig, encoder: Encoder, given: ChunkingConfig | None = None) -> ChunkingConfig:
    """The build's chunk sizes (or ``given`` ones), with the hard limit never above the model's ``max_seq_length``."""
    if given is None:
        limit = min(config.chunk_max_tokens or encoder.max_seq_length, encoder.max_seq_length)
        target, overlap = min(config.chunk_target_tokens, limit), config.chunk_overlap_tokens
    else:
        limit = min(given.max_tokens, encoder.max_seq_length)
        target, overlap = min(given.target_tokens, limit), given.overlap_tokens
    return ChunkingConfig(target_tokens=target, max_tokens=limit, overlap_tokens=min(overlap, target - 1))


def build_backend_configs(
    config: BuildConfig, names: Sequence[str], given: Mapping[str, object] | None = None
) -> dict[str, object]:
    """The config of each backend in ``names``: from ``given``, else ``config.backend_configs``, else its defaults."""
    return {name: given_config(name, {**config.backend_configs, **(given or {})}) for name in names}


class CorpusFingerprint:
    """sha256 over every document's id, metadata and text, fed one document at a time, in any order."""

    def __init__(self) -> None:
        self._documents: list[tuple[str, str]] = []

    def add(self, document: Document) -> None:
        """Take one document into account (only its id and a digest are kept)."""
        meta = {k: v for k, v in document.meta.items() if k != "path"}
        encoded = json.dumps([document.id, meta, document.content], sort_keys=True, default=str).encode()
        self._documents.append((str(document.id), hashlib.sha256(encoded).hexdigest()))

    def hexdigest(self) -> str:
        """The fingerprint of the documents added so far (independent of their order)."""
        digest = hashlib.sha256()
        for doc_id, document_digest in sorted(self._documents):
            digest.update(f"{doc_id}\x1f{document_digest}\n".encode())
        return digest.hexdigest()


def corpus_fingerprint(documents: Sequence[Document]) -> str:
    """sha256 over every document's id, metadata and text, in id order (as recorded in the manifest)."""
    fingerprint = CorpusFingerprint()
    for document in documents:
        fingerprint.add(document)
    return fingerprint.hexdigest()


def embed_chunks(
    chunks: Sequence[Chunk], encoder: Encoder, previous: dict[str, np.ndarray], batch_size: int,
    show_progress: bool,
) -> tuple[np.ndarray, int]:
    """Embed chunks held in memory, reusing stored vectors whose embedded text is unchanged (small updates).

    Returns:
        The embeddings (by chunk order) and how many were reused.
    """
    vectors = np.zeros((len(chunks), encoder.dimension), dtype=np.float32)
    missing: list[int] = []
    for i, chunk in enumerate(chunks):
        stored = previous.get(text_hash(chunk.embedding_text))
        if stored is None:
            missing.append(i)
        else:
            vectors[i] = stored
    if missing:
        vectors[missing] = encoder.encode(
            [chunks[i].embedding_text for i in missing], batch_size=batch_size, show_progress=show_progress
        )
    return vectors, len(chunks) - len(missing)


def stored_overlay_stream(
    files: Iterable[CorpusFile], state_dir: Path | None, index_dir: Path
) -> tuple[Iterator[CorpusFile], int]:
    """The corpus's files (in document-id order) with the index's document store merged in, as a stream.

    The streaming form of :func:`indexing.docstore.stored_overlay`: a stored write replaces, adds or deletes
    a document, and the result stays in document-id order.

    Returns:
        The merged files and the document store's last write (0 without a store).
    """
    path = state_dir_for(state_dir, index_dir) / DocumentStore.FILE
    if not path.is_file():
        return iter(files), 0
    store = DocumentStore(path)
    try:
        changes, last_seq = sorted(store.all_changes(), key=lambda c: c.doc_id), store.last_seq
    finally:
        store.close()

    def stored(change: StoredChange) -> Iterator[CorpusFile]:
        if change.document is not None:
            yield CorpusFile(Path(change.doc_id), change.document)

    def merged() -> Iterator[CorpusFile]:
        i = 0
        for item in files:
            if item.document is None:
                yield item
                continue
            doc_id = str(item.document.meta.get("doc_id", item.document.id))
            while i < len(changes) and changes[i].doc_id < doc_id:
                yield from stored(changes[i])
                i += 1
            if i < len(changes) and changes[i].doc_id == doc_id:  # replaced or deleted
                yield from stored(changes[i])
                i += 1
            else:
                yield item
        for change in changes[i:]:
            yield from stored(change)

    return merged(), last_seq


def _model_lineage(model: str) -> dict[str, object] | None:
    path = Path(model) / LINEAGE_FILE
    if path.is_file():
        try:
            return dict(json.loads(path.read_text()))
        except (ValueError, TypeError):
            logger.warning("ignoring unreadable %s", path)
    return None


def _previous_store(index_dir: Path, encoder: Encoder) -> Path | None:
    """The published index's chunk store, when it holds embeddings of this model."""
    try:
        manifest = Manifest.load(current_version_dir(index_dir))
    except Exception:  # no previous index, or one we cannot read: nothing to reuse
        return None
    quantization = getattr(encoder, "quantization", None)
    if manifest.model.weights_hash != encoder.weights_hash or manifest.model.quantization != quantization:
        logger.info("previous index used another model (or int8 setting); embedding everything again")
        return None
    path = current_version_dir(index_dir) / ChunkStore.FILE
    return path if path.is_file() else None


@dataclass
class ChunkedCorpus:
    """What streaming a corpus into a chunk store found."""

    documents: int
    skipped: list[SkippedFile]
    fingerprint: str


def chunk_corpus_into(
    writer: ChunkStoreWriter, files: Iterable[CorpusFile], corpus_dir: Path, chunker: Chunker, say: Progress
) -> ChunkedCorpus:
    """Chunk the files from :func:`iter_corpus` one document at a time, appending the chunks to the store.

    Raises:
        CorpusError: The corpus is missing, or holds no readable document or no text.
    """
    fingerprint = CorpusFingerprint()
    documents = 0
    skipped: list[SkippedFile] = []
    for item in files:
        for note in item.notes:
            logger.warning("%s: %s", note.path, note.reason)
        if item.skipped is not None:
            skipped.append(item.skipped)
            logger.warning("skipped %s: %s", item.path, item.skipped.reason)
            say(f"skipped {item.path}: {item.skipped.reason}")
        if item.document is not None:
            documents += 1
            fingerprint.add(item.document)
            writer.add_chunks(chunker.chunk_document(item.document))
    writer.commit()
    if not documents:
        raise CorpusError(f"no readable documents in {corpus_dir} ({len(skipped)} skipped)")
    if not len(writer):
        raise CorpusError(f"no text to index in {corpus_dir}")
    return ChunkedCorpus(documents, skipped, fingerprint.hexdigest())


def reuse_embeddings(writer: ChunkStoreWriter, sources: Sequence[Path], dimension: int) -> int:
    """Fill in embeddings from other chunk stores (same model) for chunks with the same embedded text.

    A source that cannot be read is logged and skipped. Returns how many chunks were filled.
    """
    filled = 0
    for source in sources:
        try:
            filled += writer.reuse_embeddings(source, dimension)
        except sqlite3.Error as exc:  # a damaged store must not stop a new build
            logger.warning("cannot reuse embeddings from %s: %s", source, exc)
    return filled


def embed_missing(
    writer: ChunkStoreWriter, encoder: Encoder, batch_size: int, checkpoint_chunks: int, show_progress: bool
) -> int:
    """Embed every chunk of the store that has no embedding, committing after each ``checkpoint_chunks``.

    Returns:
        How many chunks were embedded.
    """
    total = writer.count_missing()
    embedded = 0
    after = -1
    with tqdm(total=total, disable=not show_progress or total == 0, unit="chunk", desc="embedding") as bar:
        while batch := writer.missing(checkpoint_chunks, after=after):
            positions = [position for position, _ in batch]
            vectors = encoder.encode([text for _, text in batch], batch_size=batch_size, show_progress=False)
            writer.set_embeddings(positions, vectors)
            writer.commit()
            embedded += len(batch)
            after = positions[-1]
            bar.update(len(batch))
    return embedded


class Laps:
    """Wall time per stage: calling it with a stage's name records the seconds since the previous call.

    Args:
        start: When the first stage began (``time.perf_counter()``; now by default).
    """

    def __init__(self, start: float | None = None) -> None:
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter() if start is None else start

    def __call__(self, name: str) -> None:
        """Record stage ``name`` as ending now."""
        now = time.perf_counter()
        self.timings[name] = round(now - self._last, 3)
        self._last = now


def build_backends(
    build_dir: Path, dimension: int, configs: Mapping[str, object], lap: Callable[[str], None], say: Progress,
) -> dict[str, dict[str, object]]:
    """Build and save every backend in ``configs`` (name → config) from the build's chunk store, streaming texts
    and vectors in batches.

    Returns:
        Each backend's description, for the manifest.
    """
    store = ChunkStore(build_dir / ChunkStore.FILE)
    described: dict[str, dict[str, object]] = {}
    try:
        for name, config in configs.items():
            index = fit_backend(name, config, dimension, store)
            index.save(build_dir / name)
            described[name] = index.describe()
            del index
            lap(f"backend_{name}")
            say(f"built {name}")
    finally:
        store.close()
    return described


def fit_backend(name: str, config: object, dimension: int, store: ChunkStore) -> KeywordIndex | VectorIndex:
    """One backend fitted over every chunk of ``store``: a keyword backend over the stored texts (read lazily), a
    vector one over the stored embeddings, added ``BACKEND_BATCH`` at a time (never all of them held at once: two
    copies, 3 GB at a million chunks, while SQLite's rows are stacked).

    Raises:
        ValueError: A chunk has no stored embedding of this dimension (vector backends).
    """
    if name in KEYWORD_BACKEND_NAMES:
        keyword = keyword_backend(name)(config)
        keyword.build(store.embedding_texts())
        return keyword
    vector = vector_backend(name)(dimension, config)
    for start, vectors in store.embedding_batches(dimension, BACKEND_BATCH):
        vector.add(vectors, store.chunk_range(start, start + len(vectors)))
    return vector


def build_neighbour_graph(
    build_dir: Path, dimension: int, backends: Iterable[str], lap: Callable[[str], None], say: Progress,
) -> None:
    """Compute and save the chunks' neighbour graph (:mod:`indexing.neighbours`) when one of ``backends`` has
    scores the searcher smooths over it; otherwise nothing."""
    if not smooths_any(backends):
        return
    store = ChunkStore(build_dir / ChunkStore.FILE)
    try:
        graph = compute_graph(lambda: store.embedding_batches(dimension, BACKEND_BATCH), len(store), dimension)
    finally:
        store.close()
    graph.save(build_dir)
    lap("neighbour_graph")
    say(f"neighbour graph of {len(graph)} chunks ({graph.method}, {graph.seconds:.1f} s)")


def _keep_checkpoint_only(build_dir: Path, writer: ChunkStoreWriter | None) -> None:
    """After a failure: keep the chunk store as a checkpoint when it holds embeddings, else remove it all."""
    try:
        if writer is not None:
            writer.close()
        keep = has_embeddings(build_dir / ChunkStore.FILE)
    except sqlite3.Error:
        keep = False
    if not keep:
        shutil.rmtree(build_dir, ignore_errors=True)
        return
    for path in build_dir.iterdir():
        if path.name not in {ChunkStore.FILE, CHECKPOINT_FILE}:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    logger.info("build stopped; its embeddings are kept in %s for the next build to resume", build_dir)


def build_index(
    config: BuildConfig,
    encoder: Encoder,
    corpus_dir: Path | None = None,
    index_dir: Path | None = None,
    backends: Sequence[str] | str | None = None,
    show_progress: bool = False,
    progress: Progress | None = None,
    chunking: ChunkingConfig | None = None,
    configs: Mapping[str, object] | None = None,
) -> BuildSummary:
    """Build every requested backend over a corpus and swap the result into ``index_dir``.

    The build streams: documents are loaded and chunked one at a time into the chunk store of a temporary
    directory beside the target, then embedded in batches of ``config.checkpoint_chunks``, each committed
    as a checkpoint, and the backends are built from the store. Only a complete build is published.
    Embeddings are reused for chunks whose text is unchanged since the current index, and taken back from
    the checkpoint of a build that was stopped (``resumed``).

    Args:
        config: Paths, chunk sizes, batches and backend configs.
        encoder: The embedding model.
        corpus_dir: The corpus folder (``config.corpus_dir`` by default).
        index_dir: Where the index is published (``config.index_dir`` by default).
        backends: Backend names (``config.backends`` by default).
        show_progress: Show a progress bar while embedding.
        progress: Called with a short message at each phase.
        chunking: How to cut documents, instead of the config's chunk sizes (still capped at the model's limit).
        configs: Backend name → its config, instead of the one in ``config.backend_configs``.

    Returns:
        A summary of the build.

    Raises:
        CorpusError: The corpus is missing, empty or unreadable.
        UnknownBackendError: A backend name is not known.
        StorageError: The disk filled up (or is read-only) while writing; the partial build is removed.
    """
    started = time.perf_counter()
    say = progress or (lambda message: logger.info("%s", message))
    corpus_dir = Path(corpus_dir or config.corpus_dir)
    index_dir = Path(index_dir or config.index_dir)
    names = parse_backends(list(backends if backends is not None else config.backends))
    resolved = build_backend_configs(config, names, configs)
    files = iter_corpus(corpus_dir)
    first = next(files)  # fails on a missing or empty corpus before the index folder is touched
    with build_lock(index_dir):  # a document update waits, and never removes this build's folder
        return _build_locked(config, encoder, corpus_dir, index_dir, resolved, show_progress, say, started,
                             itertools.chain([first], files), chunking_config(config, encoder, chunking))


def _build_locked(
    build: BuildConfig, encoder: Encoder, corpus_dir: Path, index_dir: Path, configs: Mapping[str, object],
    show_progress: bool, say: Progress, started: float, files: Iterator[CorpusFile], config: ChunkingConfig,
) -> BuildSummary:
    lap = Laps()
    merged, document_seq = stored_overlay_stream(files, build.state_dir, index_dir)
    build_dir = new_build_dir(index_dir, f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}")
    writer: ChunkStoreWriter | None = None
    try:
        write_checkpoint_info(build_dir, encoder)
        writer = ChunkStoreWriter.create(build_dir)
        corpus = chunk_corpus_into(writer, merged, corpus_dir,
                                   Chunker(encoder.count_tokens, config), say)
        chunks = len(writer)
        lap("load_and_chunk")
        say(f"{corpus.documents} documents, {chunks} chunks")

        previous = _previous_store(index_dir, encoder)
        unchanged = reuse_embeddings(writer, [previous] if previous else [], encoder.dimension)
        resumed = reuse_embeddings(writer, usable_checkpoints(index_dir, encoder, build_dir), encoder.dimension)
        remove_stale_builds(index_dir, except_dir=build_dir)
        if resumed:
            say(f"resumed {resumed} embeddings from an unfinished build")
        embedded = embed_missing(writer, encoder, build.batch_size, build.checkpoint_chunks, show_progress)
        max_tokens, mean_tokens = writer.token_stats()
        writer.close()
        writer = None
        lap("embed")
        say(f"embedded {embedded} chunks, reused {unchanged + resumed}")

        described = build_backends(build_dir, encoder.dimension, configs, lap, say)
        build_neighbour_graph(build_dir, encoder.dimension, configs, lap, say)
        version = f"{build_dir.name.removesuffix(TMP_SUFFIX)}-{corpus.fingerprint[:8]}"
        skipped = [{"path": str(s.path), "reason": s.reason} for s in corpus.skipped]
        manifest = Manifest(
            version=version,
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
            build_seconds=round(time.perf_counter() - started, 3),
            model=ModelInfo(
                name=encoder.name, weights_hash=encoder.weights_hash, dimension=encoder.dimension,
                max_seq_length=encoder.max_seq_length, normalized=encoder.normalized,
                lineage=_model_lineage(build.model), **encoder_info(encoder),
            ),
            chunking={"target_tokens": config.target_tokens, "max_tokens": config.max_tokens,
                      "overlap_tokens": config.overlap_tokens},
            corpus={"path": str(corpus_dir), "fingerprint": corpus.fingerprint, "documents": corpus.documents,
                    "document_seq": document_seq, "skipped": skipped},
            backends=described,
            counts={"documents": corpus.documents, "chunks": chunks, "embedded": embedded,
                    "reused": unchanged + resumed, "resumed": resumed},
            library_versions=library_versions(),
        )
        manifest.save(build_dir)
        (build_dir / CHECKPOINT_FILE).unlink()
        final_tmp = build_dir.with_name(f"{version}{TMP_SUFFIX}")
        os.replace(build_dir, final_tmp)
        build_dir = final_tmp
        publish(index_dir, build_dir, keep=build.keep_versions)
    except BaseException as exc:
        disk = storage_error(exc, index_dir)
        if disk is not None:  # a full disk: free what the build took rather than keep a checkpoint
            with contextlib.suppress(Exception):
                if writer is not None:
                    writer.close()
            shutil.rmtree(build_dir, ignore_errors=True)
            raise disk from exc
        _keep_checkpoint_only(build_dir, writer)
        raise
    lap("publish")
    return BuildSummary(
        index_dir=str(index_dir), version=version, documents=corpus.documents, skipped=skipped,
        chunks=chunks, embedded=embedded, reused=unchanged + resumed, resumed=resumed, backends=list(configs),
        max_tokens=max_tokens, mean_tokens=round(mean_tokens, 2),
        seconds=round(time.perf_counter() - started, 3), timings=lap.timings,
    )
