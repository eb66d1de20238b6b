"""Open a built index directory and search it: dense (FAISS, Annoy, …), LSI, BM25 or hybrid."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from indexing.backends.registry import keyword_backend, vector_backend
from indexing.embedding import Encoder, EncoderConfig, open_encoder
from indexing.layout import current_version_dir
from indexing.manifest import Manifest
from indexing.store import ChunkStore
from mlsearch.errors import BadQueryError, IndexNotBuiltError, UnknownBackendError
from mlsearch.settings import VECTOR_BACKEND_NAMES, Settings
from search.batching import QueryBatcher
from search.fusion import reciprocal_rank_fusion
from search.snippets import make_snippet

logger = logging.getLogger(__name__)

Method = Literal["dense", "lsi", "bm25", "hybrid"]
METHODS: tuple[str, ...] = ("dense", "lsi", "bm25", "hybrid")
MAX_K = 1000
HYBRID_CANDIDATES = 100


@dataclass(frozen=True)
class SearchHit:
    """One result of a search."""

    rank: int
    id: str
    doc_id: str
    title: str
    heading: str
    text: str
    snippet: str
    score: float
    position: int
    source_type: str = ""
    path: str = ""
    url: str = ""
    page: int | None = None
    cell: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @property
    def location(self) -> str:
        """Where the passage is, for a person: ``page 3``, ``cell 2``, the page's URL, or ''."""
        if self.page is not None:
            return f"page {self.page}"
        if self.cell is not None:
            return f"cell {self.cell}"
        return self.url


@dataclass(frozen=True)
class SearchResult:
    """The hits of one search and how long it took."""

    query: str
    method: str
    backend: str
    took_ms: float
    hits: list[SearchHit]


class QueryEmbeddingCache:
    """A thread-safe LRU cache of query embeddings."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_compute(self, query: str, compute: Callable[[str], np.ndarray]) -> np.ndarray:
        """The cached embedding of ``query``, computing (and caching) it when absent."""
        if self.size <= 0:
            return compute(query)
        with self._lock:
            if query in self._items:
                self._items.move_to_end(query)
                self.hits += 1
                return self._items[query]
        vector = compute(query)
        with self._lock:
            self.misses += 1
            self._items[query] = vector
            self._items.move_to_end(query)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return vector

    def __len__(self) -> int:
        return len(self._items)


class Searcher:
    """Searches one index version. Backends are loaded on first use and kept.

    Use :meth:`open` to create one from an index directory.
    """

    def __init__(
        self, directory: Path, manifest: Manifest, encoder: Encoder, settings: Settings
    ) -> None:
        self.directory = directory
        self.manifest = manifest
        self.encoder = encoder
        self.settings = settings
        self.store = ChunkStore(directory / ChunkStore.FILE)
        self.cache = QueryEmbeddingCache(settings.query_cache_size)
        self._backends: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.batcher: QueryBatcher | None = None  # set by the service: concurrent queries encoded in batches

    @classmethod
    def open(
        cls, index_dir: Path, settings: Settings, encoder: Encoder | None = None, model: str | None = None
    ) -> Searcher:
        """Open the version that ``index_dir`` points to now.

        Args:
            index_dir: The index directory (a link to its current version, or a version itself).
            settings: Search settings.
            encoder: An already loaded model; loaded from ``model`` or the manifest's model otherwise.
            model: A model name or path to load when no encoder is given.

        Raises:
            IndexNotBuiltError: No index there.
            ModelMismatchError: The encoder is not the model the index was built with.
        """
        directory = current_version_dir(Path(index_dir))
        manifest = Manifest.load(directory)
        loaded: Encoder = encoder or open_encoder(
            model or manifest.model.name, EncoderConfig.from_settings(settings)
        )
        manifest.check_model(loaded.name, loaded.weights_hash, getattr(loaded, "quantization", None))
        return cls(directory, manifest, loaded, settings)

    @cached_property
    def chunk_count(self) -> int:
        """Chunks in this index version (counted once: a published version never changes)."""
        return len(self.store)

    @property
    def version(self) -> str:
        """The index version this searcher reads."""
        return self.manifest.version

    @property
    def built_backends(self) -> list[str]:
        """Backends present in this index."""
        return list(self.manifest.backends)

    def backend(self, name: str) -> Any:
        """The loaded backend ``name`` (loaded once, thread-safely).

        Raises:
            IndexNotBuiltError: The index was built without it.
            UnknownBackendError: No such backend.
            BackendUnavailableError: Its library or server is not available.
        """
        if name in self._backends:
            return self._backends[name]
        with self._lock:
            if name not in self._backends:
                if name not in self.manifest.backends:
                    raise IndexNotBuiltError(
                        f"backend {name!r} was not built in this index (built: {', '.join(self.built_backends)})"
                    )
                cls = vector_backend(name) if name in VECTOR_BACKEND_NAMES else keyword_backend(name)
                self._backends[name] = cls.load(self.directory / name, self.settings)
        return self._backends[name]

    def embed_query(self, query: str) -> np.ndarray:
        """The query's embedding (LRU-cached)."""
        return self.cache.get_or_compute(query, self._encode_query)

    def _encode_query(self, query: str) -> np.ndarray:
        if self.batcher is not None:
            return self.batcher.encode_one(query)
        return self.encoder.encode([query])[0]

    # -- retrieval ----------------------------------------------------------------------------------
    def retrieve(
        self, query: str, k: int = 10, method: str = "dense", backend: str = "faiss",
        tags: Sequence[str] | None = None,
    ) -> list[tuple[int, float]]:
        """Ranked ``(position, score)`` pairs, without fetching the chunks.

        Raises:
            BadQueryError: Blank query, ``k`` out of range, or unknown method.
        """
        if not query or not query.strip():
            raise BadQueryError("the query is blank")
        if not 1 <= k <= MAX_K:
            raise BadQueryError(f"k must be between 1 and {MAX_K}, got {k}")
        if method not in METHODS:
            raise BadQueryError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
        if backend not in VECTOR_BACKEND_NAMES:
            raise UnknownBackendError(f"unknown vector backend {backend!r}; valid: {', '.join(VECTOR_BACKEND_NAMES)}")
        if backend == "elasticsearch" and method != "lsi":
            return self._elasticsearch_ranked(query, k, method, tags)
        allowed = self.store.positions_with_tags(tags) if tags else None
        if allowed is not None and allowed.size == 0:
            return []
        if method == "hybrid":
            depth = max(k, HYBRID_CANDIDATES)
            dense = self._ranked(query, depth, "dense", backend, allowed)
            lexical = self._ranked(query, depth, "bm25", backend, allowed)
            fused = reciprocal_rank_fusion(
                [[p for p, _ in dense], [p for p, _ in lexical]], k=self.settings.rrf_k
            )
            return fused[:k]
        return self._ranked(query, k, method, backend, allowed)

    def _elasticsearch_ranked(
        self, query: str, k: int, method: str, tags: Sequence[str] | None
    ) -> list[tuple[int, float]]:
        """Dense (kNN), BM25 (``match``) or hybrid in Elasticsearch, with the tag filter inside its queries."""
        index = self.backend("elasticsearch")
        if method == "bm25":
            return list(index.match(query, k, tags))
        vector = self.embed_query(query)
        if method == "dense":
            return list(index.knn(vector, k, tags))
        dense, lexical = index.knn_and_match(vector, query, max(k, HYBRID_CANDIDATES), tags)
        fused = reciprocal_rank_fusion([[p for p, _ in dense], [p for p, _ in lexical]], k=self.settings.rrf_k)
        return fused[:k]

    def _ranked(
        self, query: str, k: int, method: str, backend: str, allowed: np.ndarray | None
    ) -> list[tuple[int, float]]:
        if method == "dense":
            index = self.backend(backend)
            vector = self.embed_query(query)[None, :]
            run: Callable[[int], tuple[np.ndarray, np.ndarray]] = lambda n: index.search(vector, n)  # noqa: E731
        else:
            keyword = self.backend(method)
            run = lambda n: keyword.search(query, n)  # noqa: E731
        total = self.chunk_count if allowed is None else int(allowed.size)
        want = min(k, max(total, 1))
        fetch = want if allowed is None else min(want * 4, self.chunk_count)
        allowed_set = None if allowed is None else set(allowed.tolist())
        while True:
            scores, ids = run(fetch)
            pairs = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
            if allowed_set is not None:
                pairs = [(i, s) for i, s in pairs if i in allowed_set]
            if len(pairs) >= want or fetch >= self.chunk_count or len(ids[0]) < fetch:
                return pairs[:k]
            fetch = min(fetch * 4, self.chunk_count)

    def search(
        self, query: str, k: int = 10, method: str = "dense", backend: str = "faiss",
        tags: Sequence[str] | None = None,
    ) -> SearchResult:
        """Run one search and return its hits with text, heading and a snippet.

        Args:
            query: The question.
            k: How many hits (1 to 1000).
            method: ``dense``, ``lsi``, ``bm25`` or ``hybrid`` (RRF of dense and BM25).
            backend: The vector backend for dense and hybrid.
            tags: Keep only chunks carrying any of these tags.

        Raises:
            BadQueryError, IndexNotBuiltError, UnknownBackendError, BackendUnavailableError.
        """
        started = time.perf_counter()
        ranked = self.retrieve(query, k, method, backend, tags)
        chunk_at = self.store.get(p for p, _ in ranked)
        hits = []
        for rank, (position, score) in enumerate(ranked, start=1):
            chunk = chunk_at.get(position)
            if chunk is None:
                continue
            hits.append(
                SearchHit(
                    rank=rank, id=chunk.id, doc_id=chunk.doc_id, title=chunk.title, heading=chunk.heading,
                    text=chunk.text, snippet=make_snippet(chunk.text, query), score=round(score, 6),
                    position=position, source_type=chunk.source_type, path=chunk.path, url=chunk.url,
                    page=chunk.page, cell=chunk.cell,
                )
            )
        took = (time.perf_counter() - started) * 1000
        on_backend = method in ("dense", "hybrid") or (method == "bm25" and backend == "elasticsearch")
        return SearchResult(query=query, method=method, backend=backend if on_backend else method,
                            took_ms=round(took, 3), hits=hits)

    def close(self) -> None:
        """Release the chunk store connection of this thread."""
        self.store.close()
