"""``POST /search``: one query, one method."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import MetricsDep, SearcherDep, StateDep
from api.errors import SEARCH_ERROR_RESPONSES
from api.schemas import SearchRequest, SearchResponse
from search.compare import run_search

router = APIRouter(tags=["search"])


@router.post("/search", response_model=SearchResponse, responses=SEARCH_ERROR_RESPONSES)
async def search(
    body: SearchRequest, searcher: SearcherDep, state: StateDep, metrics: MetricsDep
) -> SearchResponse:
    """Search the index with one method: dense (FAISS, Annoy or Elasticsearch), lsi, bm25 or hybrid."""
    kind = None if body.rerank else (searcher.version, body.method)  # reranking is never cheap enough
    result = await state.runner.run(
        kind, run_search, searcher, body.query, body.k, body.method, body.backend, body.chunk_filter, body.offset,
        body.group_by, body.rerank,
    )
    metrics.observe_search("/search", body.method, result.backend, result.took_ms)
    state.after_answer("search", body, (body.method,), result, searcher)
    return SearchResponse.of(result, searcher.version)
