"""``GET /tags``: the tags that the served index's chunks carry (the comparison page's filters)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import SearcherDep

router = APIRouter(tags=["search"])


class TagList(BaseModel):
    """The answer of ``GET /tags``."""

    tags: list[str] = Field(description="Every tag of the index, sorted; use them in filters.tags.")


@router.get("/tags", response_model=TagList, responses={503: {"description": "No index loaded yet."}})
async def tags(searcher: SearcherDep) -> TagList:
    """The distinct tags of the served index's chunks, for the ``filters.tags`` of a search."""
    return TagList(tags=await run_in_threadpool(searcher.store.tags))
