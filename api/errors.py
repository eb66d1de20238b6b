"""The one place where errors become HTTP responses.

Our own exception types (``mlsearch.errors`` and the few service-only ones below) map to a status code and
a short error code in :data:`ERROR_STATUS`; request validation errors become a 422 that names each bad field;
Starlette's own HTTP errors (404, 405, 413, unparsable body) get the same JSON shape. Every error body is
``{"error": <code>, "detail": <one readable line>, ...}``. Nothing outside this module builds an error
response, and nothing in the service raises ``HTTPException``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.request_id import current_request_id
from mlsearch.errors import (
    BackendUnavailableError,
    BadQueryError,
    CorpusError,
    DatasetError,
    DocumentError,
    DocumentNotFoundError,
    DriftError,
    IndexCorruptError,
    IndexNotBuiltError,
    MlsearchError,
    ModelLoadError,
    ModelMismatchError,
    StorageError,
    UnknownBackendError,
    UnsupportedDocumentError,
    UploadTooLargeError,
)

logger = logging.getLogger(__name__)


class NotReadyError(MlsearchError):
    """The service has not loaded an index yet (or could not)."""


class MissingApiKeyError(MlsearchError):
    """An admin request came without the ``X-API-Key`` header."""


class ForbiddenError(MlsearchError):
    """An admin request with a wrong API key, or while admin endpoints are disabled."""


class SearchTimeoutError(MlsearchError):
    """A search or comparison took longer than ``MLSEARCH_REQUEST_TIMEOUT_S``."""


class ErrorBody(BaseModel):
    """The body of every error answer."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="A short code: validation_error, not_ready, backend_unavailable, …")
    detail: str = Field(description="One readable line saying what went wrong.")
    request_id: str | None = Field(default=None, description="The request's X-Request-ID, for the server log.")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="For a 422: each bad field, why, and the kind of error."
    )
    backend: str | None = Field(default=None, description="For backend_unavailable: the backend.")
    retry_after_s: int | None = Field(default=None, description="For a 429: seconds to wait.")


#: Exception type → (HTTP status, error code). The most specific class in an exception's MRO wins.
ERROR_STATUS: dict[type[Exception], tuple[int, str]] = {
    NotReadyError: (503, "not_ready"),
    SearchTimeoutError: (503, "search_timeout"),
    BackendUnavailableError: (503, "backend_unavailable"),
    IndexNotBuiltError: (503, "index_not_built"),
    IndexCorruptError: (503, "index_corrupt"),
    StorageError: (507, "insufficient_storage"),
    ModelLoadError: (503, "model_unavailable"),
    ModelMismatchError: (409, "model_mismatch"),
    BadQueryError: (422, "bad_query"),
    UnknownBackendError: (422, "unknown_backend"),
    MissingApiKeyError: (401, "missing_api_key"),
    ForbiddenError: (403, "forbidden"),
    CorpusError: (500, "corpus_error"),
    DocumentError: (422, "bad_document"),
    UnsupportedDocumentError: (415, "unsupported_media_type"),
    UploadTooLargeError: (413, "body_too_large"),
    DocumentNotFoundError: (404, "document_not_found"),
    DatasetError: (500, "dataset_error"),
    DriftError: (503, "drift_unavailable"),
    MlsearchError: (500, "internal_error"),
}

_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    413: "body_too_large", 415: "unsupported_media_type",
}
_OBJECT_TYPES = {"model_attributes_type", "model_type", "dict_type"}


def status_for(exc: Exception) -> tuple[int, str]:
    """The HTTP status and error code of one of our exceptions (500 for anything unknown)."""
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return 500, "internal_error"


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of every error response; it carries the request id when there is one."""
    body = {"error": code, "detail": detail, **extra}
    request_id = current_request_id()
    if request_id is not None:
        body["request_id"] = request_id
    return body


def error_response(exc: MlsearchError) -> JSONResponse:
    """The response for one of our exceptions."""
    status, code = status_for(exc)
    extra: dict[str, Any] = {}
    if isinstance(exc, BackendUnavailableError):
        extra["backend"] = exc.backend
    if status >= 500 and status != 503:
        logger.error("request failed: %s", exc, exc_info=exc)
    return JSONResponse(error_body(code, str(exc), **extra), status_code=status)


def describe_validation_errors(errors: list[Any]) -> list[dict[str, Any]]:
    """One ``{"field", "message", "type"}`` per error, worded for a person (never echoing the input)."""
    out = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        if loc and loc[0] == "body":
            loc = loc[1:]
        kind = str(error.get("type", "value_error"))
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        field = ".".join(loc) or "body"
        if kind == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "invalid JSON")
            where = f" at character {loc[0]}" if loc else ""
            field, message = "body", f"the body is not valid JSON: {reason}{where}"
        elif kind in _OBJECT_TYPES and not loc:
            message = "the body must be a JSON object sent with Content-Type: application/json"
        elif kind == "missing":
            message = "this field is required"
        elif kind == "extra_forbidden":
            message = "unknown field"
        out.append({"field": field, "message": message, "type": kind})
    return out


async def _mlsearch_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MlsearchError)
    return error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = describe_validation_errors(list(exc.errors()))
    detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields) or "invalid request"
    return JSONResponse(error_body("validation_error", detail, errors=fields), status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = str(exc.detail)
    if exc.status_code == 413:
        limit = request.scope.get("starlette.max_body_size") or getattr(request.app.state, "max_body_bytes", None)
        detail = f"the request body is too large (the limit is {limit} bytes)" if limit else detail
    elif exc.status_code == 404:
        detail = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 400 and detail == "There was an error parsing the body":
        detail = "the body cannot be parsed: send a JSON object encoded as UTF-8"
    elif exc.status_code == 405:
        detail = f"method {request.method} is not allowed on {request.url.path}"
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return JSONResponse(error_body(code, detail), status_code=exc.status_code, headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body("internal_error", "internal error; see the server log"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register every exception handler of the service on ``app``."""
    app.add_exception_handler(MlsearchError, _mlsearch_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


#: The error responses documented in OpenAPI for the routes that search.
SEARCH_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"description": "The body is larger than MLSEARCH_MAX_BODY_BYTES."},
    422: {"description": "A field is invalid (the body names it and says why), or the body is not JSON."},
    429: {"description": "Too many requests from this client (MLSEARCH_RATE_LIMIT_PER_MINUTE); see Retry-After."},
    503: {"description": "No index is loaded yet, a backend that the method needs is unavailable, or the "
                         "search took longer than MLSEARCH_REQUEST_TIMEOUT_S."},
}
