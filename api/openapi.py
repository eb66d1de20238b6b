"""The OpenAPI document, completed in one place: every error answer is declared, with the error body's schema.

Routes declare their own error statuses (``responses=``); this module adds what every route can answer
(400, 413 and 422 for a body or parameters that cannot be read, 429 from the rate limit) and gives every
4xx and 5xx answer the :class:`~api.errors.ErrorBody` schema, so that a client, or a fuzzer, can rely on it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api.errors import ErrorBody
from api.middleware import UNLIMITED_PATHS

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
BODY_ERRORS = {
    "400": "The body cannot be parsed (not UTF-8, or not a JSON object).",
    "413": "The body is larger than MLSEARCH_MAX_BODY_BYTES.",
    "422": "A field or parameter is invalid; `errors` names each one and says why.",
}
PARAMETER_ERRORS = {"422": BODY_ERRORS["422"]}
RATE_LIMITED = {"429": "Too many requests from this client (MLSEARCH_RATE_LIMIT_PER_MINUTE); see Retry-After."}


def complete_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare the common error answers of every operation of ``schema`` (changed in place and returned)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorBody"] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            extra: dict[str, str] = {}
            if "requestBody" in operation:
                extra |= BODY_ERRORS
            elif operation.get("parameters"):
                extra |= PARAMETER_ERRORS
            if path not in UNLIMITED_PATHS:
                extra |= RATE_LIMITED
            for status, description in extra.items():
                responses.setdefault(status, {"description": description})
            for status, response in responses.items():
                if status[0] in "45":
                    response["content"] = {"application/json": {"schema": ERROR_REF}}
            if "413" in responses:  # uvicorn/FastAPI answer a declared oversize body before the app sees it
                responses["413"]["content"]["text/plain"] = {"schema": {"type": "string"}}
    return schema


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the completed document (built once, then cached)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete_openapi(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
