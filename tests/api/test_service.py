"""``/health``, ``/ready``, ``/index``, ``/metrics``, the OpenAPI docs, the answer hooks and the static mount."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.state import AnswerEvent, searcher_factory
from mlsearch.settings import Settings
from tests.api.conftest import service_state, wait_ready
from tests.fakes import CountingEncoder, HashingEncoder


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready" and ready.json()["index_version"]


def test_index_shows_the_manifest_and_counts(client: TestClient, app: FastAPI) -> None:
    body = client.get("/index").json()
    searcher = service_state(app).require_searcher()
    assert body["version"] == searcher.version == body["manifest"]["version"]
    assert body["backends"] == ["faiss", "annoy", "lsi", "bm25"]
    assert body["counts"]["documents"] == 4
    assert body["counts"]["chunks"] == len(searcher.store)
    assert body["manifest"]["model"]["name"] == "fake-hashing"
    assert body["reloads"] == 0 and body["loaded_at"]
    assert set(body["cache"]) == {"size", "entries", "hits", "misses"}
    assert body["reranker"] is None  # the page shows its reranked column only when one is configured
    assert body["smoothing"] == {"weight": 0.4, "neighbours": 3, "graph": "exact", "source": "saved"}


def test_index_names_a_configured_reranker_without_loading_it(
    tmp_path: Path, built_index: Path, api_settings: Settings, make_app: Callable[..., FastAPI]
) -> None:
    folder = tmp_path / "cross-encoder"
    with TestClient(make_app(api_settings.model_copy(update={"reranker": folder}))) as client:
        wait_ready(client)
        assert client.get("/index").json()["reranker"] == str(folder)


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = client.get("/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }


def test_metrics_count_requests_and_time_them_per_endpoint_and_method(client: TestClient) -> None:
    for method in ("dense", "lsi", "dense"):
        client.post("/search", json={"query": "adam", "method": method})
    client.post("/compare", json={"query": "adam"})
    client.post("/search", json={"query": ""})
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(client)

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("mlsearch_http_requests_total", endpoint="/search", http_method="POST", status="200") == 3
    assert value("mlsearch_http_requests_total", endpoint="/search", http_method="POST", status="422") == 1
    assert value("mlsearch_http_request_duration_seconds_count", endpoint="/search", http_method="POST") == 4
    assert value("mlsearch_searches_total", endpoint="/search", method="dense", backend="faiss") == 2
    assert value("mlsearch_searches_total", endpoint="/search", method="lsi", backend="lsi") == 1
    assert value("mlsearch_search_duration_seconds_count", endpoint="/compare", method="lsi") == 1
    assert value("mlsearch_search_duration_seconds_count", endpoint="/compare", method="dense") == 1
    client.get("/no/such/path/12345")
    assert not any("12345" in str(key) for key in _samples(client))


def test_each_app_has_its_own_metrics(
    built_index: Path, api_settings: Settings, make_app: Callable[..., FastAPI]
) -> None:
    first, second = make_app(api_settings), make_app(api_settings)
    with TestClient(first) as one, TestClient(second) as two:
        wait_ready(one)
        wait_ready(two)
        one.get("/health")
        one.get("/health")
        two.get("/health")
        key = ("mlsearch_http_requests_total", (("endpoint", "/health"), ("http_method", "GET"), ("status", "200")))
        assert _samples(one)[key] == 2
        assert _samples(two)[key] == 1


def test_openapi_documents_every_endpoint(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/search", "/compare", "/health", "/ready", "/index", "/metrics", "/admin/reload"} <= set(paths)
    assert "503" in paths["/search"]["post"]["responses"]
    assert client.get("/docs").status_code == 200


def test_answer_hooks_get_every_answer_and_a_failing_hook_is_harmless(client: TestClient, app: FastAPI) -> None:
    events: list[AnswerEvent] = []

    def broken(event: AnswerEvent) -> None:
        raise RuntimeError("hook failed")

    service_state(app).on_answer.extend([broken, events.append])
    body = {"query": "dropout", "k": 2, "filters": {"tags": ["training"]}}
    assert client.post("/search", json=body).status_code == 200
    assert client.post("/compare", json={"query": "dropout", "methods": ["bm25", "dense"]}).status_code == 200
    assert [(e.endpoint, e.methods) for e in events] == [("search", ("dense",)), ("compare", ("bm25", "dense"))]
    assert events[0].tags == ("training",) and events[0].k == 2
    assert len(events[0].result.hits) <= 2
    assert events[1].result.overlap.jaccard_at_k >= 0
    assert events[0].searcher.version == client.get("/index").json()["version"]


def test_answer_hooks_run_on_the_event_loop_with_no_hop_to_a_worker_thread(client: TestClient, app: FastAPI) -> None:
    loops: list[asyncio.AbstractEventLoop] = []
    service_state(app).on_answer.append(lambda event: loops.append(asyncio.get_running_loop()))  # raises off it
    for method in ("bm25", "dense"):
        assert client.post("/search", json={"query": "dropout", "method": method}).status_code == 200
    assert len(loops) == 2


def test_a_keyword_search_answers_before_the_drift_log_encodes_its_query_once_in_the_background(
    built_index: Path, api_settings: Settings
) -> None:
    encoder = CountingEncoder()
    app = create_app(api_settings, searcher_factory(lambda name: encoder))
    with TestClient(app) as client:
        wait_ready(client)
        writer = service_state(app).require_drift().writer
        lend, gate = writer.borrow, threading.Event()
        assert lend is not None

        @contextmanager
        def held() -> Iterator[Any]:  # the writer waits here until the test lets it measure
            assert gate.wait(30)
            with lend() as searcher:
                yield searcher

        writer.borrow = held
        query = "adam optimizer momentum"
        assert client.post("/search", json={"query": query, "method": "bm25"}).status_code == 200
        assert not any(query in call for call in encoder.calls)  # answered with no encode of the query
        gate.set()
        assert writer.flush(timeout=30)
        assert sum(call.count(query) for call in encoder.calls) == 1 and writer.written >= 1


def test_static_folder_is_served_with_its_page_at_the_root(
    tmp_path: Path, built_index: Path, api_settings: Settings, fake_encoder: HashingEncoder
) -> None:
    (tmp_path / "index.html").write_text("<html><body>mlsearch</body></html>")
    (tmp_path / "app.js").write_text("console.log('hi')")
    app = create_app(api_settings, searcher_factory(lambda name: fake_encoder), static_dir=tmp_path)
    with TestClient(app) as client:
        assert "mlsearch" in client.get("/").text
        assert client.get("/static/app.js").text == "console.log('hi')"
