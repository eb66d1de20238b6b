"""Prometheus metrics of one app (its own registry, so several apps in one process never collide)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    """Request counts and latency histograms, per endpoint and HTTP method, and per search method."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "mlsearch_http_requests", "HTTP requests by endpoint, HTTP method and status code.",
            ["endpoint", "http_method", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "mlsearch_http_request_duration_seconds", "HTTP request latency by endpoint and HTTP method.",
            ["endpoint", "http_method"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.searches = Counter(
            "mlsearch_searches", "Searches answered, by endpoint, search method and backend.",
            ["endpoint", "method", "backend"], registry=self.registry,
        )
        self.search_latency = Histogram(
            "mlsearch_search_duration_seconds", "Time spent searching (encoding included), by endpoint and method.",
            ["endpoint", "method"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.reloads = Counter(
            "mlsearch_index_reloads", "Index reloads by outcome.", ["outcome"], registry=self.registry,
        )

    def count_search_runs(self, runs: Callable[[], dict[str, int]]) -> None:
        """Export ``mlsearch_search_runs_total{where}``: searches run on the event loop or in a worker thread, as
        ``runs()`` counts them (the app's :class:`api.limits.SearchRunner`)."""
        self.registry.register(_SearchRuns(runs))

    def observe_search(self, endpoint: str, method: str, backend: str, took_ms: float) -> None:
        """Count one answered search and record how long it took."""
        self.searches.labels(endpoint, method, backend).inc()
        self.search_latency.labels(endpoint, method).observe(took_ms / 1000)


class _SearchRuns(Collector):
    def __init__(self, runs: Callable[[], dict[str, int]]) -> None:
        self.runs = runs

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("mlsearch_search_runs", "Searches by where they ran: on the event loop "
                                     "(cheap, and alone in flight) or in a worker thread.", labels=["where"])
        for where, count in self.runs().items():
            family.add_metric([where], count)
        yield family


class MetricsMiddleware:
    """ASGI middleware that counts every HTTP request and times it, labelled by route template.

    Paths that match no route are labelled ``unmatched`` so that odd URLs cannot blow up the label set.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            endpoint = str(getattr(route, "path", "unmatched")) if route is not None else "unmatched"
            method = str(scope.get("method", "?"))
            method = method if method in HTTP_METHODS else "other"
            self.metrics.requests.labels(endpoint, method, str(status)).inc()
            self.metrics.latency.labels(endpoint, method).observe(time.perf_counter() - started)
