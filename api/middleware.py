"""ASGI middleware of the service: request ids, security headers, per-client rate limits, CORS.

:func:`install_middleware` adds them in one place, outermost first: request id (so that every response, a
crash's included, carries ``X-Request-ID``), security headers, CORS (only when origins are configured),
the metrics, then the rate limit (so that 429s are counted).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body
from api.metrics import MetricsMiddleware, ServiceMetrics
from api.request_id import HEADER, install_log_record_ids, new_request_id, set_request_id
from mlsearch.settings import Settings

logger = logging.getLogger(__name__)

#: Only the service's own scripts, styles and API: the page loads /static/app.js and /static/style.css.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: FastAPI's /docs and /redoc pages load Swagger UI and ReDoc from a CDN with an inline script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com; "
    "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
#: The header that carries the app's own time of each response (see :class:`RequestIdMiddleware`).
TIMING_HEADER = "Server-Timing"
#: Paths a rate limit never counts: probes of orchestrators and load balancers.
UNLIMITED_PATHS = frozenset({"/health", "/ready"})


class RequestIdMiddleware:
    """Give each request an id (``X-Request-ID`` when the client sent a sensible one), echo it in the response.

    Every response also says how long the app took to start answering, in a ``Server-Timing: app;dur=MS``
    header (milliseconds from the request reaching the app to its response starting: the server's own time,
    without the network, the HTTP parsing or the client), which browsers' developer tools show.

    An exception that escapes the app becomes a JSON 500 here, with the id in its body and header, and is
    logged with its traceback (and the id).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived = time.perf_counter()
        request_id = new_request_id(Headers(scope=scope).get(HEADER))
        set_request_id(request_id)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                headers[HEADER] = request_id
                headers.append(TIMING_HEADER, f"app;dur={(time.perf_counter() - arrived) * 1000:.3f}")
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if type(exc).__module__.startswith("starlette."):
                raise  # Starlette's own signals (the body limit's) are handled further out
            logger.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            response = JSONResponse(error_body("internal_error", "internal error; see the server log"), 500)
            await response(scope, receive, send_with_id)


class SecurityHeadersMiddleware:
    """Add a Content-Security-Policy, ``nosniff``, frame denial and a no-referrer policy to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        csp = DOCS_CSP if path.startswith(DOCS_PATHS) else PAGE_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault("Content-Security-Policy", csp)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class TokenBuckets:
    """One token bucket per client: ``rate`` tokens a second, holding at most ``capacity``.

    At most ``max_clients`` buckets are kept (the least recently seen are forgotten, which only ever
    forgives a client), so that many addresses cannot exhaust memory. Thread-safe.
    """

    def __init__(self, per_minute: int, burst: int, max_clients: int = 10_000) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst or max(1, per_minute // 10))
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, client: str, now: float | None = None) -> float:
        """Take one token for ``client``.

        Returns:
            0 when the request may go ahead, else the seconds until the next token.
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, then = self._buckets.pop(client, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - then) * self.rate)
            wait = 0.0
            if tokens >= 1:
                tokens -= 1
            else:
                wait = (1 - tokens) / self.rate
            self._buckets[client] = (tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return wait


class RateLimitMiddleware:
    """Answer 429 with ``Retry-After`` to a client address over its request rate (``/health``, ``/ready`` free)."""

    def __init__(self, app: ASGIApp, per_minute: int, burst: int = 0) -> None:
        self.app = app
        self.buckets = TokenBuckets(per_minute, burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = self.buckets.take(str(client[0]) if client else "unknown")
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        retry = max(1, math.ceil(wait))
        body = error_body("rate_limited", f"too many requests from this client; retry after {retry} s",
                          retry_after_s=retry)
        await JSONResponse(body, status_code=429, headers={"Retry-After": str(retry)})(scope, receive, send)


def install_middleware(app: FastAPI, settings: Settings, metrics: ServiceMetrics) -> None:
    """Add every middleware of the service to ``app`` (see the module docstring for the order)."""
    install_log_record_ids()
    if settings.rate_limit_per_minute:
        app.add_middleware(RateLimitMiddleware, per_minute=settings.rate_limit_per_minute,
                           burst=settings.rate_limit_burst)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if settings.cors_origins:
        cors: dict[str, Any] = {
            "allow_origins": settings.cors_origins, "allow_methods": ["GET", "POST"],
            "allow_headers": ["Content-Type", "X-API-Key", HEADER],
            "expose_headers": [HEADER, "Retry-After", TIMING_HEADER],
        }
        app.add_middleware(CORSMiddleware, **cors)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestIdMiddleware)
