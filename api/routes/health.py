"""``GET /health`` (the process is alive) and ``GET /ready`` (an index is loaded)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import StateDep
from api.schemas import Health, Readiness

router = APIRouter(tags=["service"])


@router.get("/health", response_model=Health)
async def health() -> Health:
    """Always 200 while the process answers."""
    return Health()


@router.get("/ready", response_model=Readiness, responses={503: {"description": "No index loaded yet."}})
async def ready(state: StateDep) -> Readiness:
    """200 once an index is loaded and searches can be answered; 503 (saying why) until then."""
    return Readiness(index_version=state.require_searcher().version)
