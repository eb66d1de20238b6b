"""``GET /drift``, ``GET /drift/report`` and ``POST /admin/drift/reset``: is the traffic still what the index
was built for?"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from api.deps import AdminDep, DriftDep, StateDep
from api.drift_schemas import DriftStatusOut

router = APIRouter(tags=["drift"])
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"description": "Drift monitoring is off or could not start (the detail says why)."},
}


@router.get("/drift", response_model=DriftStatusOut, response_model_exclude_unset=True, responses=UNAVAILABLE)
async def drift(service: DriftDep) -> DriftStatusOut:
    """The drift status over every query answered before the call.

    ``status`` is ``warming_up`` (no reference yet, or too few queries since it), ``ok``, ``warning`` or
    ``drift``; ``features`` gives, per feature, the KS p-value, the PSI, whether ADWIN cut the stream, the
    sequential test, and the reference and window means; ``reasons`` names what moved.
    """
    return DriftStatusOut.of(await run_in_threadpool(service.status))


@router.get("/drift/report", response_class=HTMLResponse, responses=UNAVAILABLE)
async def drift_report(service: DriftDep) -> HTMLResponse:
    """The drift report as one HTML page: distributions, PSI bars, the stream with ADWIN's cut points."""
    return HTMLResponse(await run_in_threadpool(service.report_page))


@router.post(
    "/admin/drift/reset", tags=["admin"], response_model=DriftStatusOut, response_model_exclude_unset=True,
    responses={**UNAVAILABLE, 401: {"description": "No X-API-Key header."},
               403: {"description": "Wrong key, or admin endpoints disabled (no MLSEARCH_ADMIN_API_KEY)."}},
)
async def reset(_: AdminDep, service: DriftDep, state: StateDep) -> DriftStatusOut:
    """Start a new reference (for example after a new model is promoted): the reference file measured again
    with the model serving now, or else the next ``MLSEARCH_DRIFT_REFERENCE_SIZE`` answered queries."""
    return DriftStatusOut.of(await run_in_threadpool(service.reset, state.searcher))
