"""Clients that the load benchmark sends its requests with: httpx, or a lean keep-alive HTTP/1.1 client.

The benchmark measures the service, but at concurrency 1 every millisecond the client spends is in the figure
too, and on a 2-core machine the client also takes CPU from the server. httpx's asyncio client costs about
1 ms a request here, more than a keyword search itself (``python -m bench.load`` prints the server's own time
beside each round trip, so the split can be read). :class:`LeanClient` writes each request in one ``write`` and
reads the reply by its ``Content-Length``, on connections it keeps open: the least a client can do over HTTP.
It speaks only what ``mlsearch serve`` answers (``Content-Length`` bodies, no chunked encoding), which is all
a benchmark of it needs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx


@dataclass
class Reply:
    """One HTTP response: status, lower-cased headers and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


PostJson = Callable[[str, dict[str, Any]], Awaitable[Reply]]


class HttpClientError(Exception):
    """The server closed the connection or sent something this client does not read."""


class _NoReply(Exception):
    """The connection closed before any byte of a reply."""


class LeanClient:
    """A keep-alive HTTP/1.1 client for ``POST`` of JSON bodies: one connection per request in flight."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"LeanClient speaks plain http to a host, not {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.timeout = timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post_json(self, path: str, payload: dict[str, Any]) -> Reply:
        """``POST`` ``payload`` as JSON to ``path`` and read the whole reply.

        A kept connection that the server has closed meanwhile (uvicorn closes one idle for 5 s) is dropped, and a
        request that fails on a kept connection before any reply is sent once more on a new one, as httpx does.

        Raises:
            HttpClientError: The connection closed early or the reply has no ``Content-Length``.
        """
        body = json.dumps(payload).encode()
        request = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        while self._idle:
            reader, writer = self._idle.pop()
            if reader.at_eof():
                writer.close()
                continue
            try:
                return await self._exchange(reader, writer, request)
            except (_NoReply, ConnectionError):
                break  # the server closed it as we sent: once more on a new connection
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            return await self._exchange(reader, writer, request)
        except _NoReply as exc:
            raise HttpClientError("the server closed the connection without a reply") from exc

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> Reply:
        """Send one request and read its reply; the connection is kept for the next request unless closed."""
        try:
            writer.write(request)
            reply = await asyncio.wait_for(self._read(reader), self.timeout)
        except BaseException:
            writer.close()
            raise
        if reply.headers.get("connection", "").lower() == "close":
            writer.close()
        else:
            self._idle.append((reader, writer))
        return reply

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> Reply:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise _NoReply from exc
            raise HttpClientError(f"an incomplete response head: {exc}") from exc
        except asyncio.LimitOverrunError as exc:
            raise HttpClientError(f"no complete response head: {exc}") from exc
        status_line, *lines = raw.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise HttpClientError(f"a response without Content-Length: {status_line}")
        body = await reader.readexactly(int(headers["content-length"]))
        return Reply(status=int(status_line.split(" ", 2)[1]), headers=headers, body=body)

    async def aclose(self) -> None:
        """Close every idle connection."""
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


def httpx_poster(client: httpx.AsyncClient) -> PostJson:
    """:meth:`LeanClient.post_json` over an httpx client."""

    async def post_json(path: str, payload: dict[str, Any]) -> Reply:
        response = await client.post(path, json=payload)
        return Reply(status=response.status_code, headers=dict(response.headers), body=response.content)

    return post_json


CLIENT_ERRORS = (httpx.HTTPError, HttpClientError, OSError, asyncio.TimeoutError)
"""What a request of either client raises when the exchange fails."""
