"""``POST /search``: one query, one method."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks

from api.deps import MetricsDep, SearcherDep, StateDep
from api.errors import SEARCH_ERROR_RESPONSES
from api.limits import run_with_timeout
from api.schemas import SearchRequest, SearchResponse
from api.state import AnswerEvent
from search.compare import run_search

router = APIRouter(tags=["search"])


@router.post("/search", response_model=SearchResponse, responses=SEARCH_ERROR_RESPONSES)
async def search(
    body: SearchRequest, searcher: SearcherDep, state: StateDep, metrics: MetricsDep, background: BackgroundTasks
) -> SearchResponse:
    """Search the index with one method: dense (FAISS, Annoy or Elasticsearch), lsi, bm25 or hybrid."""
    result = await run_with_timeout(
        state.settings.request_timeout_s,
        run_search, searcher, body.query, body.k, body.method, body.backend, body.tags,
    )
    metrics.observe_search("/search", body.method, result.backend, result.took_ms)
    if state.on_answer:
        background.add_task(state.notify_answer, AnswerEvent(
            endpoint="search", query=body.query, k=body.k, methods=(body.method,), backend=body.backend,
            tags=tuple(body.tags) if body.tags else None, result=result, searcher=searcher,
        ))
    return SearchResponse.of(result, searcher.version)
