"""The indexing pipeline: corpus → cleaned documents → chunks → embeddings → backends, swapped in atomically."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from haystack import Document

from indexing.backends.registry import keyword_backend, parse_backends, vector_backend
from indexing.chunking import Chunker, ChunkingConfig
from indexing.chunks import Chunk
from indexing.documents import load_corpus
from indexing.embedding import Encoder, encoder_info, library_versions
from indexing.layout import current_version_dir, new_build_dir, publish, remove_stale_builds
from indexing.manifest import Manifest, ModelInfo
from indexing.store import ChunkStore, text_hash
from mlsearch.errors import CorpusError
from mlsearch.settings import KEYWORD_BACKEND_NAMES, Settings

logger = logging.getLogger(__name__)
Progress = Callable[[str], None]
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
    backends: list[str]
    max_tokens: int
    mean_tokens: float
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return asdict(self)


def chunking_config(settings: Settings, encoder: Encoder) -> ChunkingConfig:
    """The chunking settings, with the hard limit never above the model's ``max_seq_length``."""
    limit = min(settings.chunk_max_tokens or encoder.max_seq_length, encoder.max_seq_length)
    target = min(settings.chunk_target_tokens, limit)
    return ChunkingConfig(
        target_tokens=target, max_tokens=limit, overlap_tokens=min(settings.chunk_overlap_tokens, target - 1)
    )


def corpus_fingerprint(documents: Sequence[Document]) -> str:
    """sha256 over every document's id, metadata and text, in id order."""
    digest = hashlib.sha256()
    for document in sorted(documents, key=lambda d: str(d.id)):
        meta = {k: v for k, v in document.meta.items() if k != "path"}
        digest.update(json.dumps([document.id, meta, document.content], sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _previous_embeddings(index_dir: Path, encoder: Encoder) -> dict[str, np.ndarray]:
    try:
        manifest = Manifest.load(index_dir)
    except Exception:  # no previous index, or one we cannot read: nothing to reuse
        return {}
    if manifest.model.weights_hash != encoder.weights_hash:
        logger.info("previous index used another model; embedding everything again")
        return {}
    store = ChunkStore(current_version_dir(index_dir) / ChunkStore.FILE)
    try:
        return store.embeddings_by_text_hash(encoder.dimension)
    except Exception as exc:  # a damaged previous store must not stop a new build
        logger.warning("cannot reuse embeddings from %s: %s", index_dir, exc)
        return {}
    finally:
        store.close()


def embed_chunks(
    chunks: Sequence[Chunk], encoder: Encoder, previous: dict[str, np.ndarray], batch_size: int,
    show_progress: bool,
) -> tuple[np.ndarray, int]:
    """Embed the chunks, reusing stored vectors whose embedded text is unchanged.

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


def _model_lineage(model: str) -> dict[str, object] | None:
    path = Path(model) / LINEAGE_FILE
    if path.is_file():
        try:
            return dict(json.loads(path.read_text()))
        except (ValueError, TypeError):
            logger.warning("ignoring unreadable %s", path)
    return None


def build_index(
    settings: Settings,
    encoder: Encoder,
    corpus_dir: Path | None = None,
    index_dir: Path | None = None,
    backends: Sequence[str] | str | None = None,
    show_progress: bool = False,
    progress: Progress | None = None,
) -> BuildSummary:
    """Build every requested backend over a corpus and swap the result into ``index_dir``.

    The build happens in a temporary directory beside the target; only a complete build is published.
    Embeddings of chunks whose text is unchanged since the current index are reused.

    Args:
        settings: Chunking and backend settings.
        encoder: The embedding model.
        corpus_dir: The corpus folder (``settings.corpus_dir`` by default).
        index_dir: Where the index is published (``settings.index_dir`` by default).
        backends: Backend names (``settings.backends`` by default).
        show_progress: Show a progress bar while embedding.
        progress: Called with a short message at each phase.

    Returns:
        A summary of the build.

    Raises:
        CorpusError: The corpus is missing, empty or unreadable.
        UnknownBackendError: A backend name is not known.
    """
    started = time.perf_counter()
    say = progress or (lambda message: logger.info("%s", message))
    corpus_dir = Path(corpus_dir or settings.corpus_dir)
    index_dir = Path(index_dir or settings.index_dir)
    names = parse_backends(list(backends) if backends is not None else settings.backends)
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - since, 3)
        return now

    t = time.perf_counter()
    loaded = load_corpus(corpus_dir)
    for skipped in loaded.skipped:
        say(f"skipped {skipped.path}: {skipped.reason}")
    config = chunking_config(settings, encoder)
    chunks = Chunker(encoder.count_tokens, config).chunk_documents(loaded.documents)
    if not chunks:
        raise CorpusError(f"no text to index in {corpus_dir}")
    t = lap("load_and_chunk", t)
    say(f"{len(loaded.documents)} documents, {len(chunks)} chunks")

    previous = _previous_embeddings(index_dir, encoder)
    vectors, reused = embed_chunks(chunks, encoder, previous, settings.batch_size, show_progress)
    t = lap("embed", t)
    say(f"embedded {len(chunks) - reused} chunks, reused {reused}")

    fingerprint = corpus_fingerprint(loaded.documents)
    version = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{fingerprint[:8]}"
    remove_stale_builds(index_dir)
    build_dir = new_build_dir(index_dir, version)
    try:
        ChunkStore.write(build_dir, chunks, vectors)
        described: dict[str, dict[str, object]] = {}
        texts = [chunk.embedding_text for chunk in chunks]
        for name in names:
            if name in KEYWORD_BACKEND_NAMES:
                keyword = keyword_backend(name)(settings)
                keyword.build(texts)
                keyword.save(build_dir / name)
                described[name] = keyword.describe()
            else:
                vector = vector_backend(name)(encoder.dimension, settings)
                vector.add(vectors, chunks)
                vector.save(build_dir / name)
                described[name] = vector.describe()
            t = lap(f"backend_{name}", t)
            say(f"built {name}")
        tokens = [chunk.tokens for chunk in chunks]
        manifest = Manifest(
            version=version,
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
            build_seconds=round(time.perf_counter() - started, 3),
            model=ModelInfo(
                name=encoder.name, weights_hash=encoder.weights_hash, dimension=encoder.dimension,
                max_seq_length=encoder.max_seq_length, normalized=encoder.normalized,
                lineage=_model_lineage(settings.model), **encoder_info(encoder),
            ),
            chunking={"target_tokens": config.target_tokens, "max_tokens": config.max_tokens,
                      "overlap_tokens": config.overlap_tokens},
            corpus={"path": str(corpus_dir), "fingerprint": fingerprint, "documents": len(loaded.documents),
                    "skipped": [{"path": str(s.path), "reason": s.reason} for s in loaded.skipped]},
            backends=described,
            counts={"documents": len(loaded.documents), "chunks": len(chunks),
                    "embedded": len(chunks) - reused, "reused": reused},
            library_versions=library_versions(),
        )
        manifest.save(build_dir)
        publish(index_dir, build_dir, keep=settings.keep_versions)
    except BaseException:
        shutil.rmtree(build_dir, ignore_errors=True)
        raise
    lap("publish", t)
    return BuildSummary(
        index_dir=str(index_dir), version=version, documents=len(loaded.documents),
        skipped=[{"path": str(s.path), "reason": s.reason} for s in loaded.skipped],
        chunks=len(chunks), embedded=len(chunks) - reused, reused=reused, backends=names,
        max_tokens=max(tokens), mean_tokens=round(float(np.mean(tokens)), 2),
        seconds=round(time.perf_counter() - started, 3), timings=timings,
    )
