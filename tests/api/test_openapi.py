"""The OpenAPI document describes every answer: each route has a success response with a real schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from api.app import create_app
from mlsearch.settings import Settings

SUCCESS = ("200", "201", "202")


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def _is_described(document: dict[str, Any], schema: dict[str, Any]) -> bool:
    """A schema that says something: a string body, or an object with named properties (not a bare dict)."""
    schema = _resolve(document, schema)
    if schema.get("type") == "string":
        return True
    return schema.get("type") == "object" and bool(schema.get("properties"))


def test_every_route_documents_its_success_body(tmp_path: Path) -> None:
    app: FastAPI = create_app(Settings(index_dir=tmp_path / "index", state_dir=tmp_path / "state"))
    document = app.openapi()
    operations = [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]
    assert len(operations) >= 12  # search, compare, health, ready, index, tags, metrics, drift (3), admin, ...
    undescribed = []
    for path, method, op in operations:
        success = [op["responses"][code] for code in SUCCESS if code in op["responses"]]
        contents = [content for answer in success for content in answer.get("content", {}).values()]
        if not contents or not all(_is_described(document, c.get("schema", {})) for c in contents):
            undescribed.append(f"{method.upper()} {path}")
    assert undescribed == []


def test_the_drift_status_schema_names_its_fields(tmp_path: Path) -> None:
    document = create_app(Settings(index_dir=tmp_path / "index", state_dir=tmp_path / "state")).openapi()
    for path, method in (("/drift", "get"), ("/admin/drift/reset", "post")):
        schema = _resolve(document, document["paths"][path][method]["responses"]["200"]["content"]
                          ["application/json"]["schema"])
        assert {"status", "drift", "features", "reasons", "log"} <= set(schema["properties"])
    feature = document["components"]["schemas"]["FeatureDriftOut"]
    assert {"psi", "ks_p_adjusted", "cusum_alarm", "level"} <= set(feature["properties"])
