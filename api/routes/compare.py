"""``POST /compare``: one query, several methods, and where their rankings agree."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import MetricsDep, SearcherDep, StateDep
from api.errors import SEARCH_ERROR_RESPONSES
from api.schemas import CompareRequest, CompareResponse
from search.compare import compare as compare_methods

router = APIRouter(tags=["search"])


@router.post("/compare", response_model=CompareResponse, responses=SEARCH_ERROR_RESPONSES)
async def compare(
    body: CompareRequest, searcher: SearcherDep, state: StateDep, metrics: MetricsDep
) -> CompareResponse:
    """Run the query with two or more methods (lsi and dense by default) and measure their overlap."""
    comparison = await state.runner.run(
        None,
        compare_methods, searcher, body.query, body.k, body.methods, body.backend, body.chunk_filter, body.group_by,
    )
    for method, run in comparison.runs.items():
        metrics.observe_search("/compare", method, run.backend, run.took_ms)
    state.after_answer("compare", body, body.methods, comparison, searcher)
    return CompareResponse.of(comparison, searcher.version)
