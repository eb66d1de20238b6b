"""FastAPI dependencies: the app's settings, state, metrics, the current searcher, the drift monitor, and the
API key checks.

They are ``async`` because none of them blocks: FastAPI would run a plain function in a worker thread, one
thread hop per dependency on every request.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from api.errors import ForbiddenError, MissingApiKeyError
from api.metrics import ServiceMetrics
from api.state import ServiceState
from drift.service import DriftService
from mlsearch.settings import Settings
from search.searcher import Searcher


async def get_state(request: Request) -> ServiceState:
    """The service state of the app that serves this request."""
    state: ServiceState = request.app.state.service
    return state


async def get_app_settings(state: Annotated[ServiceState, Depends(get_state)]) -> Settings:
    """The settings the app was created with."""
    return state.settings


async def get_metrics(request: Request) -> ServiceMetrics:
    """The app's metrics."""
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


async def get_searcher(state: Annotated[ServiceState, Depends(get_state)]) -> AsyncIterator[Searcher]:
    """The current searcher, taken once: the request keeps it (open) even if a reload swaps in a new one.

    Raises:
        NotReadyError: No index is loaded yet.
    """
    searcher = state.acquire()
    try:
        yield searcher
    finally:
        state.release(searcher)


async def get_drift(state: Annotated[ServiceState, Depends(get_state)]) -> DriftService:
    """The service's drift monitor.

    Raises:
        DriftError: Drift monitoring is off or could not start (the message says why).
    """
    return state.require_drift()


async def require_admin(
    settings: Annotated[Settings, Depends(get_app_settings)],
    x_api_key: Annotated[str | None, Header(description="The admin API key (MLSEARCH_ADMIN_API_KEY).")] = None,
) -> None:
    """Let the request through only with the configured admin API key.

    Raises:
        ForbiddenError: No key is configured (admin endpoints are disabled), or the key is wrong.
        MissingApiKeyError: No ``X-API-Key`` header.
    """
    if settings.admin_api_key is None or not settings.admin_api_key.get_secret_value():
        raise ForbiddenError("admin endpoints are disabled: set MLSEARCH_ADMIN_API_KEY to enable them")
    if not x_api_key:
        raise MissingApiKeyError("this endpoint needs the admin key in the X-API-Key header")
    if not secrets.compare_digest(x_api_key.encode(), settings.admin_api_key.get_secret_value().encode()):
        raise ForbiddenError("wrong admin API key")


StateDep = Annotated[ServiceState, Depends(get_state)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
SearcherDep = Annotated[Searcher, Depends(get_searcher)]
DriftDep = Annotated[DriftService, Depends(get_drift)]
AdminDep = Annotated[None, Depends(require_admin)]


async def require_reader(
    settings: Annotated[Settings, Depends(get_app_settings)],
    x_api_key: Annotated[
        str | None, Header(description="The read key (MLSEARCH_READ_API_KEY) or the admin key.")
    ] = None,
) -> None:
    """Let the request through when no read key is configured, or with the read key or the admin key.

    Raises:
        MissingApiKeyError: A read key is configured and the request has no ``X-API-Key`` header.
        ForbiddenError: The key is neither the read key nor the admin key.
    """
    if settings.read_api_key is None or not settings.read_api_key.get_secret_value():
        return
    if not x_api_key:
        raise MissingApiKeyError("this endpoint needs the read key in the X-API-Key header")
    given = x_api_key.encode()
    keys = [settings.read_api_key, settings.admin_api_key]
    if not any(key and key.get_secret_value() and secrets.compare_digest(given, key.get_secret_value().encode())
               for key in keys):
        raise ForbiddenError("wrong API key")


ReaderDep = Annotated[None, Depends(require_reader)]
#: The answers of an endpoint behind the read key, for OpenAPI.
READ_KEY_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "A read key is configured (MLSEARCH_READ_API_KEY) and no X-API-Key header was sent."},
    403: {"description": "The X-API-Key is neither the read key nor the admin key."},
}
