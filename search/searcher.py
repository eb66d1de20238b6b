"""Open a built index directory and search it: dense (FAISS, Annoy, …), LSI, BM25 or hybrid."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any, cast

import numpy as np

from indexing.backends.base import (
    ExpandingKeywordIndex,
    FilteringIndex,
    Hits,
    KeywordIndex,
    Ranked,
    VectorIndex,
    VectorSource,
    ranked_hits,
)
from indexing.backends.configs import given_config
from indexing.backends.registry import keyword_backend, vector_backend
from indexing.embedding import Encoder, follow_index, open_encoder
from indexing.filters import ChunkFilter, as_filter
from indexing.layout import current_version_dir
from indexing.manifest import Manifest
from indexing.neighbours import NeighbourGraph, compute_graph
from indexing.store import ChunkStore
from mlsearch.catalog import (
    BACKENDS,
    DEFAULT_METHOD,
    DEFAULT_VECTOR_BACKEND,
    METHOD_NAMES,
    METHODS,
    VECTOR_BACKEND_NAMES,
    answering_backend,
    plan,
    smooths_any,
)
from mlsearch.configs import FeedbackConfig, SearchConfig
from mlsearch.errors import BadQueryError, IndexNotBuiltError, ModelLoadError, UnknownBackendError
from search.batching import QueryBatcher
from search.feedback import rocchio, with_first_pass
from search.fusion import DEFAULT_UNTUNED_FUSION, FusionConfig, fuse, untuned_fusion
from search.grouping import GROUP_DEPTH, group_by_document
from search.rerank import Reranker
from search.smoothing import SMOOTHING_DEPTH, smooth
from search.snippets import make_snippet

logger = logging.getLogger(__name__)

EncoderLoader = Callable[[str], Encoder]
"""Loads an embedding model by name or path."""
AllowedPositions = Callable[[], np.ndarray | None]
"""The positions of the chunks a search's filter allows (None: every chunk), looked up when first called."""
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
    other_matches: int | None = None

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
        return self.get_or_compute_many([query], lambda missing: [compute(missing[0])])[0]

    def get_or_compute_many(
        self, queries: Sequence[str], compute: Callable[[list[str]], np.ndarray | Sequence[np.ndarray]]
    ) -> list[np.ndarray]:
        """The embeddings of ``queries``, in order: cached ones reused, the distinct others computed in one call.

        Args:
            queries: The query texts (repeats are computed once).
            compute: Embeds a list of queries, one vector each (an ``(n, d)`` array or a list).
        """
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for query in queries:
                if self.size > 0 and query in self._items and query not in found:
                    self._items.move_to_end(query)
                    self.hits += 1
                    found[query] = self._items[query]
        missing = list(dict.fromkeys(q for q in queries if q not in found))
        if missing:
            vectors = compute(missing)
            found.update(zip(missing, vectors, strict=True))
            if self.size > 0:
                with self._lock:
                    self.misses += len(missing)
                    for query in missing:
                        self._items[query] = found[query]
                        self._items.move_to_end(query)
                    while len(self._items) > self.size:
                        self._items.popitem(last=False)
        return [found[q] for q in queries]

    def peek(self, query: str) -> np.ndarray | None:
        """The cached embedding of ``query``, or None; nothing is computed, counted or reordered."""
        with self._lock:
            return self._items.get(query)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class SmoothingGraph:
    """The neighbour graph a searcher smooths keyword scores over.

    Attributes:
        ids: Each chunk's nearest chunks, ``(chunks, neighbours)`` positions.
        method: ``exact``, or ``ivf`` for the approximate graph of a large index.
        source: ``saved`` (read from the index version) or ``computed`` (when the version was loaded).
    """

    ids: np.ndarray
    method: str
    source: str


class Searcher:
    """Searches one index version. Backends are loaded on first use and kept; so is the model.

    Use :meth:`open` to create one from an index directory. The embedding model is loaded only when a query
    first needs it (a dense or hybrid search, or :meth:`embed_query`), so keyword-only use never loads it.
    """

    def __init__(
        self, directory: Path, manifest: Manifest, config: SearchConfig, encoder: Encoder | None = None,
        load_model: Callable[[], Encoder] | None = None,
    ) -> None:
        self.directory = directory
        self.manifest = manifest
        self.config = config
        self.store = ChunkStore(directory / ChunkStore.FILE, ChunkStore.SEARCH_CACHE_SIZE)  # a published version
        self.cache = QueryEmbeddingCache(config.query_cache_size)
        self._encoder = encoder
        self._load_model = load_model
        self._backends: dict[str, VectorIndex | KeywordIndex] = {}
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()
        self.batcher: QueryBatcher | None = None  # set by the service: concurrent queries encoded in batches
        self.fusion = index_fusion(manifest, config.rrf_k, config.fusion)
        self._reranker: Reranker | None = None

    @classmethod
    def open(
        cls, index_dir: Path, config: SearchConfig, encoder: Encoder | None = None,
        model: str | None = None, loader: EncoderLoader | None = None,
    ) -> Searcher:
        """Open the version that ``index_dir`` points to now; nothing but the manifest is read yet.

        Args:
            index_dir: The index directory (a link to its current version, or a version itself).
            config: The search config (``indexing.backends.configs.search_config`` builds one from the settings).
            encoder: An already loaded model (checked against the manifest now).
            model: A model name or path to load when first needed (the manifest's model by default).
            loader: Loads a model by name (by default ``indexing.embedding.open_encoder`` with the config's encoder
                settings, what they leave unset taken from the manifest: ``indexing.embedding.follow_index``).

        Raises:
            IndexNotBuiltError: No index there.
            ModelMismatchError: The encoder is not the model the index was built with (raised when the model
                is loaded, for a model given by name).
        """
        directory = current_version_dir(Path(index_dir))
        manifest = Manifest.load(directory)
        if encoder is not None:
            manifest.check_model(encoder.name, encoder.weights_hash, getattr(encoder, "quantization", None))
        name = model or manifest.model.name
        encoder_config = follow_index(config.encoder, manifest.model)
        load = loader or (lambda n: open_encoder(n, encoder_config))

        def load_checked() -> Encoder:
            if name == manifest.model.name:  # a precision that cannot fit the index fails before an export starts
                manifest.check_precision("int8" if encoder_config.int8 else None)
            return load(name)

        return cls(directory, manifest, config, encoder=encoder, load_model=load_checked)

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

    @property
    def encoder(self) -> Encoder:
        """The embedding model, loaded (and checked against the manifest) on first use.

        Raises:
            ModelLoadError: The model cannot be loaded.
            ModelMismatchError: It is not the model the index was built with.
        """
        if self._encoder is None:
            with self._model_lock:
                if self._encoder is None:
                    if self._load_model is None:
                        raise ModelLoadError("this searcher was opened without a model")
                    loaded = self._load_model()
                    self.manifest.check_model(loaded.name, loaded.weights_hash, getattr(loaded, "quantization", None))
                    self._encoder = loaded
        return self._encoder

    @property
    def loaded_encoder(self) -> Encoder | None:
        """The model if it is loaded already, else None (never loads it)."""
        return self._encoder

    def use_encoder(self, encoder: Encoder) -> None:
        """Use an already loaded model (one kept from the previous index version) instead of loading it.

        Raises:
            ModelMismatchError: It is not the model the index was built with.
        """
        self.manifest.check_model(encoder.name, encoder.weights_hash, getattr(encoder, "quantization", None))
        with self._model_lock:
            self._encoder = encoder

    def backend(self, name: str) -> VectorIndex | KeywordIndex:
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
                if name not in BACKENDS:
                    raise UnknownBackendError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
                if name not in self.manifest.backends:
                    raise IndexNotBuiltError(
                        f"backend {name!r} was not built in this index (built: {', '.join(self.built_backends)})"
                    )
                config = given_config(name, self.config.backends)
                where = self.directory / name
                self._backends[name] = (
                    vector_backend(name).load(where, config)
                    if BACKENDS[name].kind == "vector"
                    else keyword_backend(name).load(where, config)
                )
        return self._backends[name]

    def embed_query(self, query: str) -> np.ndarray:
        """The query's embedding (LRU-cached)."""
        return self.cache.get_or_compute(query, self._encode_query)

    def cached_embedding(self, query: str) -> np.ndarray | None:
        """The query's embedding if the query cache holds it (a search just computed it), else None; never encodes."""
        return self.cache.peek(query)

    def embed_queries(self, queries: Sequence[str]) -> list[np.ndarray]:
        """The embeddings of many queries (LRU-cached): the uncached ones encoded together in one batch.

        Not through the micro-batcher: this is for background work (the drift log), which must not hold a
        request's encoding back.
        """
        return self.cache.get_or_compute_many(
            queries, lambda missing: self.encoder.encode(missing, batch_size=len(missing))
        )

    def _encode_query(self, query: str) -> np.ndarray:
        if self.batcher is not None:
            return self.batcher.encode_one(query)
        return self.encoder.encode([query])[0]

    # -- retrieval ----------------------------------------------------------------------------------
    def retrieve(
        self, query: str, k: int = 10, method: str = DEFAULT_METHOD, backend: str = DEFAULT_VECTOR_BACKEND,
        tags: ChunkFilter | Sequence[str] | None = None, fusion: FusionConfig | None = None,
        rerank: bool = False, feedback: FeedbackConfig | None = None,
    ) -> list[tuple[int, float]]:
        """Ranked ``(position, score)`` pairs, without fetching the chunks.

        Each part of the method runs on the backend the catalog plans for it (:func:`mlsearch.catalog.plan`).
        A fused method fuses the candidate lists of ``fusion`` (the index's own, :attr:`fusion`, when omitted:
        the one ``mlsearch tune`` chose, else :func:`~search.fusion.untuned_fusion`); with pseudo-relevance
        ``feedback`` (``config.feedback`` when omitted; see :mod:`search.feedback`), the top of that fused list
        refines its parts, which are then fused again. ``tags`` is a
        :class:`~indexing.filters.ChunkFilter` (tags, document ids, source types, path prefix) or a list of tags.
        With ``rerank``, the first ``config.rerank_top_n`` are reordered by the cross-encoder (:attr:`reranker`).

        Raises:
            BadQueryError: Blank query, ``k`` out of range, or unknown method.
            UnknownBackendError: ``backend`` is not a vector backend.
        """
        if not query or not query.strip():
            raise BadQueryError("the query is blank")
        if not 1 <= k <= MAX_K:
            raise BadQueryError(f"k must be between 1 and {MAX_K}, got {k}")
        if method not in METHODS:
            raise BadQueryError(f"unknown method {method!r}; valid: {', '.join(METHOD_NAMES)}")
        if backend not in VECTOR_BACKEND_NAMES:
            raise UnknownBackendError(f"unknown vector backend {backend!r}; valid: {', '.join(VECTOR_BACKEND_NAMES)}")
        if rerank:
            top_n = self.config.rerank_top_n
            ranked = self.retrieve(query, max(k, top_n), method, backend, tags, fusion, feedback=feedback)
            texts = {p: c.embedding_text for p, c in self.store.get(p for p, _ in ranked[:top_n]).items()}
            return self.reranker.rerank(query, ranked, texts, top_n)[:k]
        if not METHODS[method].fused:
            return self._rankings(query, plan(method, backend), k, tags)[0][:k]
        config = fusion or self.fusion
        steps = [step for part in config.methods for step in plan(part, backend)]
        depth = max(k, config.depth)
        vector = self.embed_query(query) if any(METHODS[part].needs_model for part, _ in steps) else None
        allowed = self._allowed(tags)
        lists = self._rankings(query, steps, depth, tags, vector, allowed)
        fused = fuse(config, lists)
        prf = self.config.feedback if feedback is None else feedback
        if prf.enabled and fused:
            chosen = [position for position, _ in fused[: prf.docs]]
            refined = self.feedback_lists(query, steps, lists, chosen, prf, depth, tags, vector, allowed)
            fused = (fuse(with_first_pass(config), [*lists, *refined]) if prf.keep_first_pass
                     else fuse(config, refined))
        return fused[:k]

    def feedback_lists(
        self, query: str, steps: list[tuple[str, str]], lists: list[Ranked], chosen: list[int],
        prf: FeedbackConfig, depth: int, tags: ChunkFilter | Sequence[str] | None, vector: np.ndarray | None = None,
        allowed: AllowedPositions | None = None,
    ) -> list[Ranked]:
        """The fused method's lists refined by the ``chosen`` feedback chunks (the top of the first fused list).

        A list ranked by the query's embedding is searched again with the Rocchio query (:func:`rocchio` of the
        chunks' stored vectors, :meth:`feedback_vectors`); a list of a keyword backend that expands queries
        (:class:`~indexing.backends.base.ExpandingKeywordIndex`, BM25) with the chunks' heaviest terms; any other
        list is kept as it is. ``vector`` is the query's embedding when already known (else it is looked up);
        ``allowed``, the positions ``tags`` allow, as the first pass looked them up (:meth:`_allowed`).
        """
        filters = as_filter(tags)
        allowed = allowed or self._allowed(filters)
        out: list[Ranked] = []
        for (part, name), ranked in zip(steps, lists, strict=True):
            index = self.backend(name)
            if METHODS[part].needs_model:
                original = self.embed_query(query) if vector is None else vector
                moved = rocchio(original, self.feedback_vectors(name, chosen), prf.query_weight)
                if BACKENDS[name].native_filtering:
                    out.append(cast(FilteringIndex, index).rank(query, moved, [part], depth, filters)[0])
                    continue
                dense = cast(VectorIndex, index)
                out.append(self._over_fetch(lambda n: dense.search(moved[None, :], n), depth, allowed()))  # noqa: B023
            elif prf.terms and isinstance(index, ExpandingKeywordIndex):
                keyword = index
                out.append(self._over_fetch(self._smoothed(
                    part, lambda n: keyword.feedback_search(query, chosen, n, prf.terms, prf.term_weight),  # noqa: B023
                ), depth, allowed()))
            else:
                out.append(ranked)
        return out

    def feedback_vectors(self, name: str, positions: Sequence[int]) -> np.ndarray:
        """The vectors of the chunks at ``positions`` (in order), as vector backend ``name`` holds them.

        Read from the chunk store, where every build keeps each chunk's embedding; a chunk stored without one is
        read back from the backend (a :class:`~indexing.backends.base.VectorSource`, reconstructing it), and
        failing that its embedded text is encoded again.
        """
        wanted = [int(p) for p in positions]
        found = self.store.embeddings_at(wanted)
        missing = [p for p in wanted if p not in found]
        index = self.backend(name) if missing else None
        if missing and isinstance(index, VectorSource):
            try:
                found.update(zip(missing, index.vectors(np.asarray(missing, np.int64)), strict=True))
            except ValueError as exc:
                logger.debug("backend %s cannot give vectors back (%s); embedding the chunks again", name, exc)
        missing = [p for p in wanted if p not in found]
        if missing:
            chunks = self.store.get(missing)
            known = [p for p in missing if p in chunks]
            if known:
                texts = [chunks[p].embedding_text for p in known]
                found.update(zip(known, self.encoder.encode(texts, batch_size=len(texts)), strict=True))
        rows = [np.asarray(found[p], np.float32) for p in wanted if p in found]
        return np.vstack(rows) if rows else np.zeros((0, self.manifest.model.dimension), np.float32)

    def _rankings(
        self, query: str, steps: list[tuple[str, str]], depth: int, tags: ChunkFilter | Sequence[str] | None,
        vector: np.ndarray | None = None, allowed: AllowedPositions | None = None,
    ) -> list[Ranked]:
        """One ranking per planned ``(part, backend)``; each backend is asked once for all its parts.

        ``vector`` is the query's embedding when the caller has it already (else it is looked up when needed);
        ``allowed``, the positions ``tags`` allow, looked up once when a backend needs them (:meth:`_allowed`).
        """
        parts_of: dict[str, list[str]] = {}
        for part, name in steps:
            parts_of.setdefault(name, []).append(part)
        found: dict[str, Ranked] = {}
        filters = as_filter(tags)
        allowed = allowed or self._allowed(filters)
        for name, parts in parts_of.items():
            if BACKENDS[name].native_filtering:
                index = self.backend(name)
                if not isinstance(index, FilteringIndex):
                    raise TypeError(f"backend {name!r} is catalogued as filtering natively but has no rank()")
                needs_vector = any(METHODS[p].needs_model for p in parts)
                if needs_vector and vector is None:
                    vector = self.embed_query(query)
                found.update(zip(parts, index.rank(query, vector, parts, depth, filters), strict=True))
                continue
            for part in parts:
                found[part] = self._filtered(query, depth, part, name, allowed(), vector)
        return [found[part] for part, _ in steps]

    def _allowed(self, tags: ChunkFilter | Sequence[str] | None) -> AllowedPositions:
        """The positions of the chunks ``tags`` allow (None: every chunk), looked up on the first call only: the
        first pass and the feedback pass of one search share it, and a search whose backends all filter natively
        never looks them up."""
        filters = as_filter(tags)
        if filters.is_empty:
            return lambda: None
        return cache(lambda: self.store.positions_matching(filters))

    def _filtered(
        self, query: str, k: int, part: str, name: str, allowed: np.ndarray | None, vector: np.ndarray | None = None
    ) -> Ranked:
        """The searcher's over-fetch loop for a backend that cannot filter: fetch more until ``k`` pass."""
        index = self.backend(name)
        run: Callable[[int], Hits]
        if BACKENDS[name].kind == "vector":
            dense = cast(VectorIndex, index)
            row = (self.embed_query(query) if vector is None else vector)[None, :]
            run = lambda n: dense.search(row, n)  # noqa: E731
        else:
            keyword = cast(KeywordIndex, index)
            run = self._smoothed(part, lambda n: keyword.search(query, n))
        return self._over_fetch(run, k, allowed)

    @property
    def neighbours(self) -> np.ndarray | None:
        """Each chunk's nearest chunks by stored embedding, for score smoothing (:mod:`search.smoothing`): the
        ids of :attr:`smoothing_graph`, or None."""
        graph = self.smoothing_graph
        return None if graph is None else graph.ids

    @cached_property
    def smoothing_graph(self) -> SmoothingGraph | None:
        """The neighbour graph BM25 is smoothed over, and where it came from; None when nothing would be smoothed
        (smoothing off, or no built backend that the searcher filters itself serves a method the catalog marks
        smoothed).

        The graph the build saved with the version is read (:mod:`indexing.neighbours`). A version without one
        (built before graphs were saved, or saved with fewer neighbours than asked) gets it computed here, exactly,
        when it holds at most ``config.smoothing.max_chunks`` chunks that all have a stored embedding; otherwise
        it is not smoothed. :func:`api.state.warm_up` asks for it when a service loads an index.
        """
        config = self.config.smoothing
        if not config.enabled or not smooths_any(self.built_backends):
            return None
        try:
            saved = NeighbourGraph.load(self.directory)
        except (OSError, ValueError) as exc:
            logger.warning("index version %s: its neighbour graph is unreadable (%s)", self.version, exc)
            saved = None
        if saved is not None and len(saved) == self.chunk_count and saved.k >= min(config.neighbours,
                                                                                   self.chunk_count - 1):
            return SmoothingGraph(np.ascontiguousarray(saved.first(config.neighbours)), saved.method, "saved")
        if self.chunk_count > config.max_chunks:
            logger.info("no smoothing for index version %s: it has no saved neighbour graph and %d chunks, more than "
                        "%d to compute one from", self.version, self.chunk_count, config.max_chunks)
            return None
        vectors = self.store.embeddings()
        if len(vectors) != self.chunk_count:
            logger.info("no smoothing for index version %s: not every chunk has a stored embedding", self.version)
            return None
        graph = compute_graph(vectors, k=config.neighbours)  # it logs its size and time
        return SmoothingGraph(graph.ids, graph.method, "computed")

    def _smoothed(self, part: str, run: Callable[[int], Hits]) -> Callable[[int], Hits]:
        """``run`` with its scores smoothed over :attr:`neighbours` when the catalog marks ``part`` smoothed (the
        top ``SMOOTHING_DEPTH`` raw hits are smoothed and re-ranked); ``run`` itself otherwise."""
        graph = self.neighbours if METHODS[part].smoothed else None
        if graph is None:
            return run
        weight = self.config.smoothing.weight

        def smoothed(n: int) -> Hits:
            top = smooth(ranked_hits(run(max(n, SMOOTHING_DEPTH))), graph, weight)[:n]
            return np.array([[v for _, v in top]], np.float32), np.array([[p for p, _ in top]], np.int64)

        return smoothed

    def _over_fetch(self, run: Callable[[int], Hits], k: int, allowed: np.ndarray | None) -> Ranked:
        """The first ``k`` hits of ``run(n)`` whose positions are ``allowed`` (all when None), asking ``run`` for
        more until ``k`` pass or the index is exhausted."""
        if allowed is not None and allowed.size == 0:
            return []
        total = self.chunk_count if allowed is None else int(allowed.size)
        want = min(k, max(total, 1))
        fetch = want if allowed is None else min(want * 4, self.chunk_count)
        allowed_set = None if allowed is None else set(allowed.tolist())
        while True:
            scores, ids = run(fetch)
            pairs = ranked_hits((scores, ids))
            if allowed_set is not None:
                pairs = [(i, s) for i, s in pairs if i in allowed_set]
            if len(pairs) >= want or fetch >= self.chunk_count or len(ids[0]) < fetch:
                return pairs[:k]
            fetch = min(fetch * 4, self.chunk_count)

    def search(
        self, query: str, k: int = 10, method: str = DEFAULT_METHOD, backend: str = DEFAULT_VECTOR_BACKEND,
        tags: ChunkFilter | Sequence[str] | None = None, offset: int = 0, group_by: str | None = None,
        rerank: bool = False,
    ) -> SearchResult:
        """Run one search and return its hits with text, heading and a snippet.

        Args:
            query: The question.
            k: How many hits (1 to 1000, ``offset`` included).
            method: ``dense``, ``lsi``, ``bm25`` or ``hybrid`` (the index's fusion of dense and BM25).
            backend: The vector backend for dense and hybrid.
            tags: A :class:`~indexing.filters.ChunkFilter`, or a list of tags (keep chunks carrying any).
            offset: Skip this many hits (or documents, when grouped): the page starts at rank ``offset + 1``.
            group_by: ``"document"``: the best chunk of each document, with ``other_matches``, the number of
                its other chunks among the ranked candidates (``GROUP_DEPTH`` per result wanted).
            rerank: Reorder the top ``config.rerank_top_n`` with the cross-encoder (:attr:`reranker`).

        Raises:
            BadQueryError, IndexNotBuiltError, UnknownBackendError, BackendUnavailableError.
        """
        started = time.perf_counter()
        if offset < 0 or offset + k > MAX_K:
            raise BadQueryError(f"offset + k must be at most {MAX_K}, got {offset} + {k}")
        if group_by not in (None, "document"):
            raise BadQueryError(f"unknown group_by {group_by!r}; valid: document")
        depth = offset + k if group_by is None else min(MAX_K, (offset + k) * GROUP_DEPTH)
        ranked = self.retrieve(query, depth, method, backend, tags, rerank=rerank)
        others: dict[int, int] = {}
        if group_by == "document":
            doc_of = {p: c.doc_id for p, c in self.store.get(p for p, _ in ranked).items()}
            grouped = group_by_document(ranked, doc_of.get)
            ranked = [(g.position, g.score) for g in grouped]
            others = {g.position: g.others for g in grouped}
        ranked = ranked[offset : offset + k]
        chunk_at = self.store.get(p for p, _ in ranked)
        hits = []
        for rank, (position, score) in enumerate(ranked, start=offset + 1):
            chunk = chunk_at.get(position)
            if chunk is None:
                continue
            hits.append(
                SearchHit(
                    rank=rank, id=chunk.id, doc_id=chunk.doc_id, title=chunk.title, heading=chunk.heading,
                    text=chunk.text, snippet=make_snippet(chunk.text, query), score=round(score, 6),
                    position=position, source_type=chunk.source_type, path=chunk.path, url=chunk.url,
                    page=chunk.page, cell=chunk.cell, other_matches=others.get(position),
                )
            )
        took = (time.perf_counter() - started) * 1000
        return SearchResult(query=query, method=method, backend=answering_backend(method, backend),
                            took_ms=round(took, 3), hits=hits)

    @property
    def reranker_path(self) -> str | None:
        """The cross-encoder folder ``rerank`` would use (``config.reranker``, else the manifest's), or None;
        nothing is loaded."""
        path = self.config.reranker or ((self.manifest.tuning or {}).get("reranker") or {}).get("path")
        return str(path) if path else None

    @property
    def reranker(self) -> Reranker:
        """The cross-encoder of ``rerank`` (loaded once): ``config.reranker``, else the manifest's.

        Raises:
            BadQueryError: No reranker is configured.
            ModelLoadError: It cannot be loaded.
        """
        if self._reranker is None:
            with self._model_lock:
                if self._reranker is None:
                    path = self.reranker_path
                    if not path:
                        raise BadQueryError("no reranker is configured: set MLSEARCH_RERANKER to a cross-encoder "
                                            "folder or run `mlsearch rerank-train`")
                    self._reranker = Reranker.load(path, device=self.config.encoder.device)
        return self._reranker

    def close(self) -> None:
        """Release the chunk store connection of this thread."""
        self.store.close()

    def close_all(self) -> None:
        """Release every thread's chunk store connection and the loaded backends (the searcher is retired)."""
        self.store.close_all()
        self._backends.clear()


def index_fusion(manifest: Manifest, rrf_k: int, untuned: str = DEFAULT_UNTUNED_FUSION) -> FusionConfig:
    """The fusion hybrid search uses on an index: the one ``mlsearch tune`` chose, else the untuned default.

    The untuned default is :func:`~search.fusion.untuned_fusion` of ``untuned`` (``zscore``, ``minmax`` or
    ``rrf``). A tuned fusion that fuses a method whose backend this index lacks is ignored (with a warning).
    """
    tuned = (manifest.tuning or {}).get("fusion")
    if tuned:
        config = FusionConfig.from_dict(tuned)
        if all(m in METHODS and (METHODS[m].needs_model or METHODS[m].default_backend in manifest.backends)
               for m in config.methods):
            return config
        logger.warning("tuned fusion %s needs backends this index lacks; using the untuned default",
                       config.label())
    return untuned_fusion(untuned, rrf_k, HYBRID_CANDIDATES)
