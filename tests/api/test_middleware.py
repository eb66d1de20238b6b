"""Request ids, security headers, CORS, the read key, rate limits, the search timeout and graceful shutdown."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from pydantic import SecretStr

from api.middleware import TokenBuckets
from api.routes import search as search_route
from bench.load import server_time_ms
from mlsearch.settings import Settings
from tests.api.conftest import ADMIN_KEY, wait_ready

READ_KEY = "test-read-key"


@pytest.fixture
def started(built_index: Path, api_settings: Settings, make_app: Callable[..., FastAPI]) -> Iterator[
    Callable[..., TestClient]
]:
    """Start an app with setting overrides; every client started is closed at the end."""
    clients: list[TestClient] = []

    def start(**updates: Any) -> TestClient:
        client = TestClient(make_app(api_settings, **updates)).__enter__()
        clients.append(client)
        wait_ready(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def test_every_response_carries_a_request_id_and_errors_repeat_it(client: TestClient) -> None:
    made_up = client.get("/health").headers["X-Request-ID"]
    assert len(made_up) == 32 and made_up != client.get("/health").headers["X-Request-ID"]
    echoed = client.post("/search", json={"query": "dropout"}, headers={"X-Request-ID": "trace-42.a:b"})
    assert echoed.status_code == 200 and echoed.headers["X-Request-ID"] == "trace-42.a:b"
    odd = client.get("/health", headers={"X-Request-ID": "no spaces or\tcontrol"})
    assert odd.headers["X-Request-ID"] != "no spaces or\tcontrol" and len(odd.headers["X-Request-ID"]) == 32
    for response in (
        client.post("/search", json={"query": ""}, headers={"X-Request-ID": "bad-1"}),
        client.get("/nowhere", headers={"X-Request-ID": "bad-2"}),
        client.post("/admin/reload", headers={"X-Request-ID": "bad-3"}),
    ):
        assert response.status_code >= 400
        assert response.json()["request_id"] == response.headers["X-Request-ID"]
        assert response.json()["request_id"].startswith("bad-")


def test_a_crash_is_a_json_500_with_the_request_id_in_body_header_and_log(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def crash(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(search_route, "run_search", crash)
    with caplog.at_level(logging.ERROR):
        response = client.post("/search", json={"query": "dropout"}, headers={"X-Request-ID": "crash-1"})
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "detail": "internal error; see the server log",
                               "request_id": "crash-1"}
    assert response.headers["X-Request-ID"] == "crash-1"
    logged = [r for r in caplog.records if "unexpected error" in r.getMessage()]
    assert logged and all(getattr(r, "request_id", None) == "crash-1" for r in logged)
    assert "boom" not in response.text


def test_log_records_outside_a_request_get_a_dash(client: TestClient) -> None:
    record = logging.getLogger("mlsearch.test").makeRecord("mlsearch.test", logging.INFO, __file__, 1, "x", (), None)
    assert record.request_id == "-"  # type: ignore[attr-defined]


def test_security_headers_on_the_page_and_the_api(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    for response in (page, client.post("/search", json={"query": "dropout"}), client.get("/nowhere")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self';" in csp and "style-src 'self';" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
    assert "cdn.jsdelivr.net" in client.get("/docs").headers["Content-Security-Policy"]  # Swagger UI still works


def test_cors_is_off_unless_origins_are_configured(client: TestClient, started: Callable[..., TestClient]) -> None:
    preflight = {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/search", headers=preflight).headers
    simple = client.post("/search", json={"query": "dropout"}, headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in simple.headers

    configured = started(cors_origins=["https://team.example"])
    allowed = configured.options("/search", headers={**preflight, "Origin": "https://team.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://team.example"
    other = configured.options("/search", headers=preflight)
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize("path", ["/metrics", "/drift", "/drift/report"])
def test_traffic_figures_are_behind_the_read_key_when_one_is_set(
    client: TestClient, started: Callable[..., TestClient], path: str
) -> None:
    assert client.get(path).status_code == 200  # no read key configured: open, as before
    private = started(read_api_key=SecretStr(READ_KEY))
    missing = private.get(path)
    assert missing.status_code == 401 and missing.json()["error"] == "missing_api_key"
    wrong = private.get(path, headers={"X-API-Key": "guess"})
    assert wrong.status_code == 403 and wrong.json()["error"] == "forbidden"
    assert private.get(path, headers={"X-API-Key": READ_KEY}).status_code == 200
    assert private.get(path, headers={"X-API-Key": ADMIN_KEY}).status_code == 200
    assert private.post("/search", json={"query": "dropout"}).status_code == 200  # search stays open


def test_a_client_over_its_rate_gets_429_with_retry_after(started: Callable[..., TestClient]) -> None:
    client = started(rate_limit_per_minute=60, rate_limit_burst=3)
    answers = [client.post("/search", json={"query": "dropout"}) for _ in range(5)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    limited = answers[-1]
    assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 2 and limited.json()["request_id"]
    assert all(client.get("/health").status_code == 200 for _ in range(10))  # probes are never limited
    counted = generate_latest(client.app.state.metrics.registry).decode()  # type: ignore[attr-defined]
    assert 'status="429"' in counted


def test_token_buckets_refill_and_stay_bounded() -> None:
    buckets = TokenBuckets(per_minute=60, burst=2, max_clients=3)
    assert [buckets.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]
    assert buckets.take("a", now=1.5) == 0.0  # one token a second came back
    for client in "bcde":
        buckets.take(client, now=2.0)
    assert len(buckets._buckets) == 3


def slow_down_searches(monkeypatch: pytest.MonkeyPatch, seconds: float) -> Callable[..., Any]:
    """Make every search of ``POST /search`` take ``seconds`` longer; returns the real search function."""
    real = search_route.run_search

    def slow(*args: Any) -> Any:
        time.sleep(seconds)
        return real(*args)

    monkeypatch.setattr(search_route, "run_search", slow)
    return real


def test_a_search_over_the_timeout_is_a_clear_503(
    started: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = started(request_timeout_s=0.2)
    real = slow_down_searches(monkeypatch, 1.0)
    response = client.post("/search", json={"query": "dropout"})
    assert response.status_code == 503
    assert response.json()["error"] == "search_timeout" and "MLSEARCH_REQUEST_TIMEOUT_S" in response.json()["detail"]
    monkeypatch.setattr(search_route, "run_search", real)
    assert client.post("/search", json={"query": "dropout"}).status_code == 200


def test_the_search_responses_declare_429_and_the_protected_ones_401_and_403(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"413", "422", "429", "503"} <= set(paths["/search"]["post"]["responses"])
    assert {"401", "403"} <= set(paths["/metrics"]["get"]["responses"])
    assert {"401", "403"} <= set(paths["/drift/report"]["get"]["responses"])


def test_every_response_says_the_apps_own_time_in_server_timing(
    started: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = started()
    quick = server_time_ms(client.get("/health").headers["Server-Timing"])
    assert 0 <= quick < 1000
    slow_down_searches(monkeypatch, 0.3)
    response = client.post("/search", json={"query": "dropout"})
    assert response.status_code == 200 and response.headers["Server-Timing"].startswith("app;dur=")
    assert 300 <= server_time_ms(response.headers["Server-Timing"]) < 30_000
    error = client.post("/search", json={"query": ""})
    assert error.status_code == 422 and server_time_ms(error.headers["Server-Timing"]) >= 0


def test_the_load_bench_reads_the_app_time_among_other_server_timing_entries() -> None:
    assert server_time_ms("db;dur=2.5, app;dur=1.25;desc=\"app\"") == 1.25
    assert server_time_ms("app;dur=0.400") == 0.4
    assert server_time_ms("") != server_time_ms("")  # NaN: the server sent no figure
    assert server_time_ms("cache;desc=hit") != server_time_ms("cache;desc=hit")
