"""``POST /admin/reload``: move to the index version the directory points to now (API key protected)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import AdminDep, MetricsDep, StateDep
from api.schemas import ReloadResult
from mlsearch.errors import MlsearchError

router = APIRouter(prefix="/admin", tags=["admin"])


@router.post(
    "/reload", response_model=ReloadResult,
    responses={
        401: {"description": "No X-API-Key header."},
        403: {"description": "Wrong key, or admin endpoints disabled (no MLSEARCH_ADMIN_API_KEY)."},
        503: {"description": "The new version cannot be loaded; the current one keeps serving."},
    },
)
async def reload(_: AdminDep, state: StateDep, metrics: MetricsDep, force: bool = False) -> ReloadResult:
    """Load the current index version and swap it in without dropping in-flight requests.

    Nothing is reloaded when the directory still points to the served version, unless ``force=true``.
    """
    try:
        outcome = await state.reload(force=force)
    except MlsearchError:
        metrics.reloads.labels("failed").inc()
        raise
    metrics.reloads.labels("reloaded" if outcome.reloaded else "unchanged").inc()
    return ReloadResult(
        reloaded=outcome.reloaded, version=outcome.version, previous_version=outcome.previous_version
    )
