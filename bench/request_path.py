"""The service's own cost per request, in-process: where a search's time goes besides the search itself.

Run: ``.venv/bin/python -m bench.request_path --index-dir DIR [--requests 500] [--methods bm25,dense]
[--drift on|off|both] [--profile METHOD]``

It opens the app of ``mlsearch serve`` over the index (its lifespan included: index loaded, drift log and
writer started when ``--drift on``) and calls it as an ASGI app, one request after the other, with no server
and no client: what it measures is the app's own work. For each method it prints the median wall time and the
CPU time (``time.process_time``, every thread of this process, the drift log's writer included) per request of

* ``Searcher.search`` called directly in this thread (the search itself),
* ``POST /search`` through the app (middlewares, dependencies, validation, the worker thread, serialisation,
  the drift hook),

and the same for ``GET /health`` (the floor of any request). Every request asks a query not asked before; dense
ones are asked once first, so that the query cache holds their embedding and encoding is left out of both.
With ``--drift on``, the drift log's writer is flushed after every cell and its work (the background encode of
a keyword query's embedding included) is counted in the CPU time. ``--profile METHOD`` prints cProfile's top
functions for that method's ``POST /search`` cell.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.load import load_queries
from mlsearch.catalog import METHODS

METHOD_NEEDS_MODEL = {name: method.needs_model for name, method in METHODS.items()}

Call = Callable[[str, str, bytes], Awaitable[int]]


def asgi_caller(app: Any) -> Call:
    """A function that sends one HTTP request to the ASGI app and returns the response status."""

    async def call(method: str, path: str, body: bytes) -> int:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        }
        sent = False
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])

        await app(scope, receive, send)
        return status

    return call


def timed(walls: list[float], cpus: list[float], step: Callable[[], Any]) -> Any:
    """Run ``step`` and append its wall and CPU milliseconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = step()
    walls.append((time.perf_counter() - wall) * 1000)
    cpus.append((time.process_time() - cpu) * 1000)
    return out


async def measure_app(app: Any, methods: list[str], queries: list[str], requests: int,
                      profile: str | None) -> dict[str, dict[str, float]]:
    """Median wall and mean CPU milliseconds per request of each stage, for each method."""
    state = app.state.service
    while state.searcher is None:
        await asyncio.sleep(0.05)
    call = asgi_caller(app)
    searcher = state.searcher
    figures: dict[str, dict[str, float]] = {}
    # warm: the drift writer's model loaded, and its reference (the first answered queries) frozen, a one-off cost
    for i in range(state.settings.drift_reference_size + 5 if state.drift is not None else 5):
        warm = {"query": f"warm {queries[i % len(queries)]} {i}", "method": "bm25"}
        await call("POST", "/search", json.dumps(warm).encode())
    await _drain(state)
    await asyncio.sleep(2.0)  # let the start-up's background work (loading, warm-up threads) finish first
    for method in methods:
        # every request asks a query not asked before (the drift log finds no keyword query's embedding cached)
        asked = [f"{queries[i % len(queries)]} {i}" for i in range(requests)]
        for query in asked:  # warm: backends loaded, snippets' word cache filled, dense embeddings cached
            if METHOD_NEEDS_MODEL.get(method, True):
                searcher.search(query, k=10, method=method)
            else:
                searcher.search(queries[0], k=10, method=method)
        walls: list[float] = []
        cpus: list[float] = []
        cpu_start = time.process_time()
        for query in asked:
            timed(walls, cpus, partial(searcher.search, query, k=10, method=method))
        direct = (statistics.median(walls), (time.process_time() - cpu_start) * 1000 / len(asked))
        bodies = [json.dumps({"query": q, "k": 10, "method": method}).encode() for q in asked]
        profiler = cProfile.Profile() if profile == method else None
        await _drain(state)
        walls = []
        cpu_start = time.process_time()
        if profiler:
            profiler.enable()
        for body in bodies:
            started = time.perf_counter()
            status = await call("POST", "/search", body)
            walls.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise SystemExit(f"POST /search answered {status}")
        await _drain(state)
        if profiler:
            profiler.disable()
        served = (statistics.median(walls), (time.process_time() - cpu_start) * 1000 / len(bodies))
        figures[method] = {"search_wall_ms": direct[0], "search_cpu_ms": direct[1],
                           "post_search_wall_ms": served[0], "post_search_cpu_ms": served[1]}
        if profiler:
            print(f"-- cProfile of POST /search, {method}, {len(bodies)} requests (cumulative) --")
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
    walls = []
    cpu_start = time.process_time()
    for _ in range(requests):
        started = time.perf_counter()
        await call("GET", "/health", b"")
        walls.append((time.perf_counter() - started) * 1000)
    figures["health"] = {"get_health_wall_ms": statistics.median(walls),
                         "get_health_cpu_ms": (time.process_time() - cpu_start) * 1000 / requests}
    return figures


async def _drain(state: Any) -> None:
    """Wait until the drift log has measured and written every query answered so far (when it runs)."""
    if state.drift is not None:
        await asyncio.to_thread(state.drift.writer.flush, 60.0)


async def run(index_dir: Path, drift: bool, methods: list[str], queries: list[str], requests: int,
              profile: str | None) -> dict[str, dict[str, float]]:
    """Open the app over the index (lifespan included) and measure it."""
    from api.app import create_app
    from mlsearch.settings import Settings

    with tempfile.TemporaryDirectory(prefix="mlsearch-path-") as state_dir:
        settings = Settings(index_dir=index_dir, state_dir=Path(state_dir), watch_index=False, drift_log=drift,
                            micro_batch=False)
        app = create_app(settings, static_dir=None)
        async with app.router.lifespan_context(app):
            return await measure_app(app, methods, queries, requests, profile)


def main() -> None:
    """Print the per-request figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--methods", default="bm25,dense")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--drift", choices=("on", "off", "both"), default="both")
    parser.add_argument("--profile", help="cProfile this method's POST /search cell.")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    queries = load_queries(200)
    from mlsearch.settings import Settings

    threads = Settings().serve_torch_threads
    if threads:  # as `mlsearch serve` does
        import torch

        torch.set_num_threads(threads)
    for drift in {"on": [True], "off": [False], "both": [False, True]}[args.drift]:
        figures = asyncio.run(run(args.index_dir, drift, methods, queries, args.requests, args.profile))
        print(f"\ndrift log {'on' if drift else 'off'}, {args.requests} requests per method, one at a time, "
              f"in-process ASGI calls (no server, no client); ms per request (wall: median; CPU: mean, all threads)")
        print(f"{'method':8} {'search wall':>11} {'search CPU':>10} {'POST wall':>10} {'POST CPU':>9} "
              f"{'app wall':>9} {'app CPU':>8}")
        for method in methods:
            f = figures[method]
            print(f"{method:8} {f['search_wall_ms']:11.3f} {f['search_cpu_ms']:10.3f} "
                  f"{f['post_search_wall_ms']:10.3f} {f['post_search_cpu_ms']:9.3f} "
                  f"{f['post_search_wall_ms'] - f['search_wall_ms']:9.3f} "
                  f"{f['post_search_cpu_ms'] - f['search_cpu_ms']:8.3f}")
        health = figures["health"]
        print(f"GET /health: wall {health['get_health_wall_ms']:.3f}, CPU {health['get_health_cpu_ms']:.3f}")


if __name__ == "__main__":
    main()
