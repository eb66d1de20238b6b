"""Request and response bodies of the search service."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from indexing.filters import ChunkFilter
from mlsearch.catalog import (
    DEFAULT_COMPARE_METHODS,
    DEFAULT_METHOD,
    DEFAULT_VECTOR_BACKEND,
    METHOD_NAMES,
    METHODS,
    VECTOR_BACKEND_NAMES,
)
from search.compare import Comparison
from search.searcher import SearchHit, SearchResult

if TYPE_CHECKING:
    Method = str
    Backend = str
else:  # the OpenAPI enums, built from the catalog
    Method = Literal[METHOD_NAMES]
    Backend = Literal[VECTOR_BACKEND_NAMES]
METHOD_HELP = "; ".join(f"{spec.name}: {spec.description}" for spec in METHODS.values())
BACKEND_HELP = f"The vector backend for dense and hybrid: {', '.join(VECTOR_BACKEND_NAMES)}."
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
SourceType = Literal["markdown", "text", "pdf", "html", "notebook"]
GroupBy = Literal["document"]
MAX_QUERY_CHARS = 1000
#: The most results one request may ask for (per method). The searcher itself allows up to
#: ``search.searcher.MAX_K`` (evaluation ranks deeper pools); the page's ``app.js`` uses the same 100.
MAX_RESULTS = 100


def _check_query(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


class Filters(BaseModel):
    """Restrictions on which chunks may be returned."""

    model_config = ConfigDict(extra="forbid")

    tags: list[Tag] = Field(
        default_factory=list, max_length=50, description="Keep chunks that carry any of these tags."
    )
    doc_ids: list[Tag] = Field(default_factory=list, max_length=200, description="Keep chunks of these documents.")
    source_types: list[SourceType] = Field(
        default_factory=list, max_length=5, description="Keep chunks from these kinds of file."
    )
    path_prefix: str = Field(default="", max_length=500, description="Keep chunks whose file path starts with this.")

    def chunk_filter(self) -> ChunkFilter:
        """The filter as the searcher takes it."""
        return ChunkFilter.of(self.tags, self.doc_ids, list(self.source_types), self.path_prefix)


class FilteredRequest(BaseModel):
    """What the search and compare bodies share: their ``filters``, as the searcher and the answer hooks take
    them."""

    if TYPE_CHECKING:  # declared by each body, so that it keeps its place in the OpenAPI schema
        filters: Filters | None

    @property
    def tags(self) -> list[str] | None:
        """The tag filter, or None when there is none."""
        return list(self.filters.tags) if self.filters and self.filters.tags else None

    @property
    def chunk_filter(self) -> ChunkFilter:
        """Every filter, as the searcher takes it."""
        return self.filters.chunk_filter() if self.filters else ChunkFilter()


class SearchRequest(FilteredRequest):
    """The body of ``POST /search``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"query": "how do I stop overfitting", "k": 5, "method": DEFAULT_METHOD}]},
    )

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="The question (not blank).")
    k: int = Field(default=10, ge=1, le=MAX_RESULTS, description="How many results.")
    method: Method = Field(default=DEFAULT_METHOD, description=METHOD_HELP)
    backend: Backend = Field(default=DEFAULT_VECTOR_BACKEND, description=BACKEND_HELP)
    filters: Filters | None = None
    offset: int = Field(default=0, ge=0, le=900, description="Results to skip (pagination).")
    group_by: GroupBy | None = Field(
        default=None, description="'document': the best chunk per document, with the count of its other matches."
    )
    rerank: bool = Field(
        default=False, description="Reorder the top results with the cross-encoder reranker (MLSEARCH_RERANKER)."
    )

    _query = field_validator("query")(_check_query)


def _default_methods() -> list[Method]:
    return list(DEFAULT_COMPARE_METHODS)


class CompareRequest(FilteredRequest):
    """The body of ``POST /compare``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"query": "population stability index", "k": 5,
                                         "methods": list(DEFAULT_COMPARE_METHODS)}]},
    )

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="The question (not blank).")
    k: int = Field(default=10, ge=1, le=MAX_RESULTS, description="How many results per method.")
    methods: list[Method] = Field(
        default_factory=_default_methods, min_length=2, max_length=4,
        description="Two or more distinct methods, compared in this order.",
    )
    backend: Backend = Field(default=DEFAULT_VECTOR_BACKEND, description=BACKEND_HELP)
    filters: Filters | None = None
    group_by: GroupBy | None = Field(default=None, description="'document': each run keeps one chunk per document.")

    _query = field_validator("query")(_check_query)

    @field_validator("methods")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each method may be given only once")
        return value


class Hit(BaseModel):
    """One result."""

    rank: int
    id: str = Field(description="The chunk id (stable across rebuilds).")
    doc_id: str
    title: str
    heading: str
    text: str
    snippet: str = Field(description="The part of the text around the query's terms.")
    score: float
    source_type: str = Field(default="", description="markdown, text, pdf, html or notebook ('' in old indexes).")
    path: str = Field(default="", description="The file (or upload name) the passage comes from.")
    url: str = Field(default="", description="HTML: the page's canonical URL, else its file path.")
    page: int | None = Field(default=None, description="PDF: the page (1-based) the passage is on.")
    cell: int | None = Field(default=None, description="Notebook: the cell (0-based) the passage is in.")
    other_matches: int | None = Field(
        default=None, description="With group_by=document: the document's other matching chunks among the candidates."
    )

    @classmethod
    def of(cls, hit: SearchHit) -> Hit:
        """From a search hit."""
        return cls(rank=hit.rank, id=hit.id, doc_id=hit.doc_id, title=hit.title, heading=hit.heading,
                   text=hit.text, snippet=hit.snippet, score=hit.score, source_type=hit.source_type,
                   path=hit.path, url=hit.url, page=hit.page, cell=hit.cell, other_matches=hit.other_matches)


class SearchResponse(BaseModel):
    """The answer of ``POST /search``."""

    query: str
    method: str
    backend: str
    took_ms: float
    index_version: str
    results: list[Hit]

    @classmethod
    def of(cls, result: SearchResult, index_version: str) -> SearchResponse:
        """From a search result."""
        return cls(query=result.query, method=result.method, backend=result.backend, took_ms=result.took_ms,
                   index_version=index_version, results=[Hit.of(h) for h in result.hits])


class Run(BaseModel):
    """One method's run in a comparison."""

    backend: str
    took_ms: float
    results: list[Hit]


class RankChangeOut(BaseModel):
    """Ranks of a result that every method found."""

    id: str
    ranks: dict[str, int]
    change: int = Field(description="Rank in the last method minus rank in the first (positive: it fell).")


class OverlapOut(BaseModel):
    """Where the methods agree and where they part."""

    jaccard_at_k: float = Field(description="|intersection| / |union| of the methods' top-k chunk ids.")
    pairwise_jaccard: dict[str, float]
    shared_ids: list[str] = Field(description="Chunk ids found by every method, in the first method's order.")
    only_in: dict[str, list[str]] = Field(description="Chunk ids found by one method alone.")
    rank_changes: list[RankChangeOut]


class CompareResponse(BaseModel):
    """The answer of ``POST /compare``."""

    query: str
    k: int
    index_version: str
    runs: dict[str, Run]
    overlap: OverlapOut

    @classmethod
    def of(cls, comparison: Comparison, index_version: str) -> CompareResponse:
        """From a comparison."""
        o = comparison.overlap
        return cls(
            query=comparison.query, k=comparison.k, index_version=index_version,
            runs={m: Run(backend=r.backend, took_ms=r.took_ms, results=[Hit.of(h) for h in r.hits])
                  for m, r in comparison.runs.items()},
            overlap=OverlapOut(
                jaccard_at_k=o.jaccard_at_k, pairwise_jaccard=o.pairwise_jaccard, shared_ids=o.shared_ids,
                only_in=o.only_in,
                rank_changes=[RankChangeOut(id=c.id, ranks=c.ranks, change=c.change) for c in o.rank_changes],
            ),
        )


class Health(BaseModel):
    """The answer of ``GET /health``."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """The answer of ``GET /ready`` when the service can search."""

    status: Literal["ready"] = "ready"
    index_version: str


class CacheInfo(BaseModel):
    """The query-embedding LRU cache of the current index version."""

    size: int
    entries: int
    hits: int
    misses: int


class SmoothingInfo(BaseModel):
    """How the served index smooths BM25 scores over the chunks' neighbour graph."""

    weight: float = Field(description="The neighbours' share of a chunk's score.")
    neighbours: int = Field(description="Nearest chunks per chunk.")
    graph: str = Field(description="`exact`, or `ivf` for the approximate graph of a large index.")
    source: str = Field(description="`saved` with the index version, or `computed` when it was loaded.")


class IndexInfo(BaseModel):
    """The answer of ``GET /index``: the loaded version, its manifest and counts."""

    version: str
    directory: str
    loaded_at: str
    reloads: int
    backends: list[str]
    counts: dict[str, int]
    cache: CacheInfo
    manifest: dict[str, Any]
    reranker: str | None = Field(
        default=None, description="The cross-encoder folder that `rerank: true` uses (none configured: null).")
    smoothing: SmoothingInfo | None = Field(
        default=None, description="How BM25 scores are smoothed over similar chunks (not smoothed: null).")


class ReloadResult(BaseModel):
    """The answer of ``POST /admin/reload``."""

    reloaded: bool
    version: str
    previous_version: str | None


class ErrorBody(BaseModel):
    """Every error response."""

    error: str
    detail: str
