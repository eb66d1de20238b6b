"""The load benchmark's lean HTTP client: keep-alive, a stale kept connection retried once, clear errors."""

from __future__ import annotations

import asyncio
import json

import pytest

from bench.http_client import HttpClientError, LeanClient


async def serve(close_after: int, headers: str = "") -> tuple[asyncio.Server, list[int]]:
    """A server that answers each POST with its JSON body echoed, closing a connection after ``close_after``."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(0)
        index = len(connections) - 1
        while connections[index] < close_after:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            length = int(head.decode().lower().split("content-length:")[1].split("\r\n")[0])
            body = await reader.readexactly(length)
            answer = json.dumps({"echo": json.loads(body), "connection": index}).encode()
            length_line = f"Content-Length: {len(answer)}\r\n" if "no-length" not in headers else ""
            writer.write(f"HTTP/1.1 200 OK\r\n{length_line}Server-Timing: app;dur=0.5\r\n\r\n".encode() + answer)
            await writer.drain()
            connections[index] += 1
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, connections


def test_requests_reuse_one_connection_and_a_closed_one_is_replaced() -> None:
    async def run() -> None:
        server, connections = await serve(close_after=2)
        port = server.sockets[0].getsockname()[1]
        client = LeanClient(f"http://127.0.0.1:{port}")
        replies = [await client.post_json("/search", {"query": f"q{i}"}) for i in range(5)]
        assert [r.json()["echo"]["query"] for r in replies] == [f"q{i}" for i in range(5)]
        assert [r.json()["connection"] for r in replies] == [0, 0, 1, 1, 2]  # 2 a connection, then a new one
        assert replies[0].status == 200 and replies[0].headers["server-timing"] == "app;dur=0.5"
        await client.aclose()
        server.close()
        await server.wait_closed()

    asyncio.run(run())


def test_a_reply_without_content_length_is_a_clear_error() -> None:
    async def run() -> None:
        server, _ = await serve(close_after=1, headers="no-length")
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(HttpClientError, match="Content-Length"):
            await LeanClient(f"http://127.0.0.1:{port}").post_json("/search", {"query": "q"})
        server.close()
        await server.wait_closed()

    asyncio.run(run())


def test_only_plain_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="plain http"):
        LeanClient("https://example.org")
