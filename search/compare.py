"""Run one query with several retrieval methods and measure where their rankings agree and part.

The service's ``POST /search`` and ``POST /compare`` both go through :func:`run_search`, which first checks
that every backend a method needs was built (and, for Elasticsearch, is configured), so that a missing
backend is reported by name while the others keep answering.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from indexing.filters import ChunkFilter
from mlsearch import catalog
from mlsearch.catalog import DEFAULT_VECTOR_BACKEND
from mlsearch.errors import BackendUnavailableError, BadQueryError, UnknownBackendError
from search.searcher import Searcher, SearchResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RankChange:
    """Where one result found by every method ranks in each of them.

    Attributes:
        id: The chunk id.
        ranks: Its rank (from 1) in each method's list.
        change: Rank in the last method minus rank in the first (positive: it fell).
    """

    id: str
    ranks: dict[str, int]
    change: int


@dataclass(frozen=True)
class Overlap:
    """How far several top-k lists agree.

    Attributes:
        jaccard_at_k: Size of the intersection of all top-k id sets over the size of their union
            (for two methods, their Jaccard similarity); 0 when no method found anything.
        pairwise_jaccard: The Jaccard similarity of every pair, keyed ``"a|b"`` in the order given.
        shared_ids: Ids found by every method, in the first method's order.
        only_in: For each method, the ids that no other method found, in its order.
        rank_changes: For each shared id, its rank in every method.
    """

    jaccard_at_k: float
    pairwise_jaccard: dict[str, float]
    shared_ids: list[str]
    only_in: dict[str, list[str]]
    rank_changes: list[RankChange]


@dataclass(frozen=True)
class Comparison:
    """The runs of every method for one query, and their overlap."""

    query: str
    k: int
    runs: dict[str, SearchResult]
    overlap: Overlap = field(repr=False)


def jaccard(a: Sequence[str], b: Sequence[str]) -> float:
    """``|A ∩ B| / |A ∪ B|`` of two id lists (0 when both are empty).

    Example:
        >>> jaccard(["a", "b", "c"], ["b", "c", "d"])
        0.5
    """
    left, right = set(a), set(b)
    union = left | right
    return len(left & right) / len(union) if union else 0.0


def overlap(rankings: Mapping[str, Sequence[str]]) -> Overlap:
    """Agreement figures of several ranked id lists (best first), keyed by method.

    Args:
        rankings: At least two lists of ids, in the order in which the methods were asked for.

    Returns:
        The overlap figures.

    Raises:
        ValueError: Fewer than two rankings.

    Example:
        >>> o = overlap({"lsi": ["a", "b", "c", "d"], "dense": ["c", "a", "e", "f"]})
        >>> round(o.jaccard_at_k, 4), o.shared_ids, [r.change for r in o.rank_changes]
        (0.3333, ['a', 'c'], [1, -2])
    """
    if len(rankings) < 2:
        raise ValueError(f"overlap needs at least two rankings, got {len(rankings)}")
    names = list(rankings)
    sets = {name: set(ids) for name, ids in rankings.items()}
    union = set().union(*sets.values())
    common = set.intersection(*sets.values())
    first, last = names[0], names[-1]
    positions = {name: {item: rank for rank, item in enumerate(_unique(ids), start=1)}
                 for name, ids in rankings.items()}
    shared = [item for item in _unique(rankings[first]) if item in common]
    changes = [
        RankChange(
            id=item,
            ranks={name: positions[name][item] for name in names},
            change=positions[last][item] - positions[first][item],
        )
        for item in shared
    ]
    only_in = {
        name: [item for item in _unique(ids) if not any(item in sets[o] for o in names if o != name)]
        for name, ids in rankings.items()
    }
    pairwise = {
        f"{a}|{b}": round(jaccard(rankings[a], rankings[b]), 6)
        for i, a in enumerate(names) for b in names[i + 1:]
    }
    return Overlap(
        jaccard_at_k=round(len(common) / len(union), 6) if union else 0.0,
        pairwise_jaccard=pairwise,
        shared_ids=shared,
        only_in=only_in,
        rank_changes=changes,
    )


def _unique(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def required_backends(method: str, backend: str) -> list[str]:
    """The index backends a method needs with the asked vector backend, as the catalog plans it.

    Example:
        >>> required_backends("hybrid", "annoy"), required_backends("bm25", "elasticsearch")
        (['annoy', 'bm25'], ['elasticsearch'])

    Raises:
        BadQueryError: Unknown method.
        UnknownBackendError: Unknown backend.
    """
    if method not in catalog.METHODS:
        raise BadQueryError(f"unknown method {method!r}; valid: {', '.join(catalog.METHOD_NAMES)}")
    if backend not in catalog.BACKENDS:
        raise UnknownBackendError(f"unknown backend {backend!r}; valid: {', '.join(catalog.BACKEND_NAMES)}")
    return catalog.required_backends(method, backend)


def check_backends(searcher: Searcher, method: str, backend: str) -> None:
    """Fail, naming the backend, when a method needs a backend that was not built into this index.

    A backend that was built but cannot be reached (an Elasticsearch cluster that is down) fails later,
    when it is used, with the same error naming it.

    Raises:
        BackendUnavailableError: A needed backend is not in the index.
        BadQueryError: Unknown method.
    """
    for name in required_backends(method, backend):
        if name not in searcher.built_backends:
            raise BackendUnavailableError(
                name,
                f"it was not built into index {searcher.version} "
                f"(built: {', '.join(searcher.built_backends)})",
            )


def run_search(
    searcher: Searcher, query: str, k: int, method: str, backend: str, tags: ChunkFilter | Sequence[str] | None = None,
    offset: int = 0, group_by: str | None = None, rerank: bool = False,
) -> SearchResult:
    """One search, after checking that the backends it needs are there.

    Args:
        searcher: The searcher of the index version to use.
        query: The question.
        k: How many hits.
        method: ``dense``, ``lsi``, ``bm25`` or ``hybrid``.
        backend: The vector backend for dense and hybrid.
        tags: A :class:`~indexing.filters.ChunkFilter`, or tags (keep chunks that carry any).
        offset: Hits (or documents) to skip.
        group_by: ``"document"`` for the best chunk per document.
        rerank: Reorder the top results with the cross-encoder reranker.

    Raises:
        BackendUnavailableError, BadQueryError, IndexNotBuiltError, UnknownBackendError.
    """
    check_backends(searcher, method, backend)
    return searcher.search(query, k=k, method=method, backend=backend, tags=tags, offset=offset, group_by=group_by,
                           rerank=rerank)


def compare(
    searcher: Searcher, query: str, k: int, methods: Sequence[str], backend: str = DEFAULT_VECTOR_BACKEND,
    tags: ChunkFilter | Sequence[str] | None = None, group_by: str | None = None,
) -> Comparison:
    """Run the query with every method and measure the overlap of their top-k chunk ids.

    Args:
        searcher: The searcher of the index version to use.
        query: The question.
        k: How many hits per method.
        methods: Two or more distinct methods, in the order to compare them.
        backend: The vector backend for dense and hybrid.
        tags: A :class:`~indexing.filters.ChunkFilter`, or tags (keep chunks that carry any).
        group_by: ``"document"``: each run keeps the best chunk per document.

    Returns:
        The runs by method and their overlap.

    Raises:
        BadQueryError: Fewer than two methods, or a method given twice.
        BackendUnavailableError: A method needs a backend that is not there (checked before any run).
    """
    if len(methods) < 2:
        raise BadQueryError(f"compare needs at least two methods, got {len(methods)}")
    if len(set(methods)) != len(methods):
        raise BadQueryError(f"each method may be given once, got {list(methods)}")
    for method in methods:
        check_backends(searcher, method, backend)
    runs = {
        method: searcher.search(query, k=k, method=method, backend=backend, tags=tags, group_by=group_by)
        for method in methods
    }
    figures = overlap({method: [hit.id for hit in run.hits] for method, run in runs.items()})
    logger.debug("compare %r: jaccard@%d %.3f", query, k, figures.jaccard_at_k)
    return Comparison(query=query, k=k, runs=runs, overlap=figures)
