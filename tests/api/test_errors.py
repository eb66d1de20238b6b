"""Every error the service answers: validation, bad bodies, oversize bodies, unknown routes, not ready."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.errors import ERROR_STATUS, NotReadyError, status_for
from indexing.backends.configs import build_config
from indexing.build import build_index
from mlsearch.catalog import VECTOR_BACKEND_NAMES
from mlsearch.errors import BackendUnavailableError, BadQueryError, MlsearchError
from mlsearch.settings import Settings
from tests.api.conftest import wait_ready, wait_until
from tests.fakes import HashingEncoder


@pytest.mark.parametrize(
    ("path", "body", "field", "words"),
    [
        ("/search", {"query": ""}, "query", "at least 1 character"),
        ("/search", {"query": "   \n\t"}, "query", "blank"),
        ("/search", {"query": "x" * 1001}, "query", "at most 1000"),
        ("/search", {"query": "\ud800 lone surrogate"}, "query", "valid string"),
        ("/search", {}, "query", "required"),
        ("/search", {"query": "q", "k": 0}, "k", "greater than or equal to 1"),
        ("/search", {"query": "q", "k": 101}, "k", "less than or equal to 100"),
        ("/search", {"query": "q", "k": "ten"}, "k", "integer"),
        ("/search", {"query": "q", "method": "semantic"}, "method", "'dense', 'lsi', 'bm25' or 'hybrid'"),
        ("/search", {"query": "q", "backend": "milvus"}, "backend",
         ", ".join(repr(n) for n in VECTOR_BACKEND_NAMES[:-1]) + f" or {VECTOR_BACKEND_NAMES[-1]!r}"),
        ("/search", {"query": "q", "top_k": 3}, "top_k", "unknown field"),
        ("/search", {"query": "q", "filters": {"tags": "drift"}}, "filters.tags", "list"),
        ("/search", {"query": "q", "filters": {"tags": [" "]}}, "filters.tags.0", "at least 1 character"),
        ("/search", {"query": "q", "filters": {"tag": ["drift"]}}, "filters.tag", "unknown field"),
        ("/compare", {"query": "q", "methods": ["dense"]}, "methods", "at least 2"),
        ("/compare", {"query": "q", "methods": ["dense", "dense"]}, "methods", "only once"),
        ("/compare", {"query": "q", "methods": ["dense", "word2vec"]}, "methods.1", "'dense'"),
        ("/compare", {"query": "q", "k": -5}, "k", "greater than or equal to 1"),
    ],
)
def test_validation_error_is_422_naming_the_field_and_why(
    client: TestClient, path: str, body: dict[str, object], field: str, words: str
) -> None:
    response = client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["error"] == "validation_error"
    fields = {error["field"]: error["message"] for error in payload["errors"]}
    assert field in fields, payload
    assert words in fields[field]
    assert field in payload["detail"]


@pytest.mark.parametrize(
    ("content", "content_type", "words"),
    [
        (b'{"query": "dropout", ', "application/json", "not valid JSON"),
        (b"query=dropout", "application/x-www-form-urlencoded", "must be a JSON object"),
        (b"dropout", "text/plain", "must be a JSON object"),
        (b'{"query": "dropout"}', None, "must be a JSON object"),
        (b'["dropout"]', "application/json", "must be a JSON object"),
        (b"\xff\xfe\x00garbage", "application/json", "not valid JSON"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_clear_4xx(
    client: TestClient, content: bytes, content_type: str | None, words: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/search", content=content, headers=headers)
    assert 400 <= response.status_code < 500
    assert words in response.json()["detail"]


def test_an_oversized_body_is_413(client: TestClient, api_settings: Settings) -> None:
    big = json.dumps({"query": "x" * (api_settings.max_body_bytes + 10)}).encode()
    declared = client.post("/search", content=big, headers={"content-type": "application/json"})
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts the bytes as they arrive
        for start in range(0, len(big), 1024):
            yield big[start:start + 1024]

    streamed = client.post("/search", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert streamed.json()["error"] == "body_too_large"
    assert str(api_settings.max_body_bytes) in streamed.json()["detail"]
    assert client.post("/search", json={"query": "dropout"}).status_code == 200


def test_unknown_route_and_wrong_method_are_json_errors(client: TestClient) -> None:
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = client.get("/search")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"


def test_not_ready_until_an_index_appears(
    tiny_corpus: Path, api_settings: Settings, fake_encoder: HashingEncoder, make_app: Callable[..., FastAPI]
) -> None:
    app = make_app(api_settings, watch_index=True, watch_interval_s=0.05)
    with TestClient(app) as client:
        assert client.get("/health").json() == {"status": "ok"}
        wait_until(lambda: app.state.service.load_error is not None, what="the failed first load")
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["error"] == "not_ready" and "no index" in ready.json()["detail"]
        search = client.post("/search", json={"query": "dropout"})
        assert search.status_code == 503 and search.json()["error"] == "not_ready"
        assert client.get("/index").status_code == 503

        summary = build_index(build_config(api_settings), fake_encoder, corpus_dir=tiny_corpus,
                              backends=["faiss", "bm25"])
        wait_ready(client)
        assert client.get("/ready").json()["index_version"] == summary.version
        assert client.post("/search", json={"query": "dropout"}).status_code == 200


def test_every_error_type_has_one_status() -> None:
    assert status_for(NotReadyError("x")) == (503, "not_ready")
    assert status_for(BackendUnavailableError("faiss", "gone")) == (503, "backend_unavailable")
    assert status_for(BadQueryError("x")) == (422, "bad_query")
    assert status_for(MlsearchError("x")) == (500, "internal_error")
    assert status_for(RuntimeError("x")) == (500, "internal_error")
    assert all(issubclass(cls, MlsearchError) for cls in ERROR_STATUS)


ODD_VALUES: list[object] = [
    None, True, False, 0, -1, 1, 3, 100, 101, 10**30, -(10**30), 1.5, 2.0, float("inf"), "", " ", "\x00",
    "dropout", "a" * 1000, "a" * 1001, "\ud800", "😀🔥", "مرحبا", "' OR 1=1 --", "%s%n", "dense", "lsi", "bm25",
    "hybrid", "faiss", "annoy", "elasticsearch", "???", "..", [], {}, [1, 2], ["dense", "lsi"], ["dense"] * 5,
    {"tags": ["drift"]}, {"tags": [None]}, {"tags": "drift"}, {"tags": [""]}, {"tags": ["x" * 200]},
    {"tags": ["t"] * 60}, {"tags": {}}, {"nested": {"deep": [1, {"a": None}]}},
]
KEYS = ["query", "k", "method", "backend", "filters", "methods", "extra"]


def _odd_bodies(rng: random.Random, count: int) -> Iterator[tuple[bytes, str | None]]:
    raw = [
        b"", b"null", b"1", b'"text"', b"[]", b"[" * 5000 + b"]" * 5000, b"{" * 3000, b'{"query": "\\ud800"}',
        b'{"query": "x", "k": NaN}', b'{"query": "x", "k": 1e400}', b'{"query": "x"}{"query": "y"}',
        bytes(range(256)), b'{"query": "drop\\u0000out", "method": "hybrid"}',
    ]
    for body in raw:
        yield body, "application/json"
    for _ in range(count):
        body = {key: rng.choice(ODD_VALUES) for key in rng.sample(KEYS, rng.randint(0, 4))}
        if rng.random() < 0.6:
            body["query"] = rng.choice(["dropout", "momentum of sgd", "???", "😀", "a" * 999, "drop\x00out"])
        text = json.dumps(body, allow_nan=True).encode()
        yield text, rng.choice(["application/json", "application/json", "text/plain", None])


def test_no_odd_input_yields_a_500(client: TestClient) -> None:
    rng = random.Random(1234)
    statuses: dict[int, int] = {}
    for content, content_type in _odd_bodies(rng, 300):
        for path in ("/search", "/compare"):
            headers = {"content-type": content_type} if content_type else {}
            response = client.post(path, content=content, headers=headers)
            assert response.status_code < 500, (path, content[:200], response.text)
            assert "error" in response.json() or "results" in response.json() or "runs" in response.json()
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    assert statuses.get(200, 0) > 10 and statuses.get(422, 0) > 100
