"""Load benchmark of ``mlsearch serve``: latency and throughput per method at concurrency 1, 4 and 16.

Run: ``.venv/bin/python -m bench.load [--index-dir DIR] [--requests 200] [--max-seconds 20] [--cache]
[--encoder-backends torch,openvino-int8] [--micro-batch both|on|off] [--client lean|httpx]``

Each encoder backend is served with micro-batching of query encoding off and on (``MLSEARCH_MICRO_BATCH``),
one server after the other: the first and the service's defaults (``openvino-int8`` with micro-batching) serve
every method, the others dense only (keyword methods do not encode). The keyword goal is read on the defaults,
what a user serves; the first variant's keyword figures are printed beside them. Exports of the model are read
from (or made once into) ``~/.cache/mlsearch/encoders``.

It starts a real ``mlsearch serve`` on 127.0.0.1 (a free port) over the given index, or over one it builds
from ``corpus/`` into a temporary folder, waits for ``/ready``, and sends ``POST /search`` from an asyncio
client (``--client lean``, the default: a keep-alive HTTP/1.1 client that costs the least; ``--client httpx``:
httpx's, about 1 ms more a request here) with 1, 4 and 16 requests in flight, for each method. Each cell is
bounded by a request count and a time limit, and only loopback traffic is sent. Beside the figures it prints the
bare query-encoding time of the same model (``encode([query])`` in this process), measured in the same run while
the server is idle, in a worker thread as the service encodes (torch's threading differs between the main thread and
others, and under CPU contention the main thread can be several times slower; that figure is printed too).
Unless ``--cache`` is given, the server's query-embedding cache holds only ``LOG_HANDOFF_CACHE`` (64) queries,
fewer than the distinct queries cycled (200), and each cell goes on where the last one stopped, so every dense
request encodes its query while the drift log, which measures each answered query on a background thread, still
gets that embedding: it takes it from the cache when the answer is logged, as it does in production. (With the
cache off, every dense query was encoded a second time for the log, competing with the requests: two encodes per
request, a benchmark artefact.)

Beside each cell's round trip it prints two medians the server reports: ``app p50``, the app's own time from its
``Server-Timing: app;dur=`` header (from the request reaching the app to its response starting: no HTTP parsing,
network or client), and ``search``, the search's own ``took_ms`` (encoding included). Round trip minus app is
the HTTP and client share; app minus search is the request path's. The dense and hybrid cells at concurrency 1
also encode their queries here, in a worker thread, ten at a time just before sending those ten (``paired
bare``; see :func:`run_cell` for why not one right before each), and the dense goal is read against that: on a
shared machine the speed of the CPU drifts between a bare encoding measured before the load and the requests
themselves by more than the 2 ms the goal is about.

Goals: dense p50 at concurrency 1 at most 2 ms above the bare encoding p50 (and within 1.5x); keyword
p50 at concurrency 1 at most 1.5 ms; dense throughput at concurrency 16 at least 3x torch's without
micro-batching; no errors at concurrency 16.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.http_client import CLIENT_ERRORS, LeanClient, PostJson, httpx_poster

BareEncode = Callable[[str], Awaitable[float]]

ROOT = Path(__file__).resolve().parents[1]
QUERIES_FILE = ROOT / "evaluation" / "builtin" / "indomain_queries.txt"
FALLBACK_QUERIES = [
    "how do I stop overfitting", "what does dropout do at inference", "adam versus sgd with momentum",
    "how to pick a learning rate", "what is the population stability index", "kolmogorov smirnov test for drift",
    "when to use cross validation", "precision and recall trade off", "what is batch normalization",
    "how does a convolutional layer work", "canary release of a model", "how to detect concept drift",
]
METHODS = ("dense", "lsi", "bm25", "hybrid")
ENCODING_METHODS = ("dense", "hybrid")
LEVELS = (1, 4, 16)
EXPORT_CACHE = Path.home() / ".cache" / "mlsearch" / "encoders"
LOG_HANDOFF_CACHE = 64
"""Query-cache size when ``--cache`` is off: below the distinct queries cycled (so every dense request encodes), and
not zero (the drift log takes each answer's embedding from the cache when the answer is logged)."""
PAIR_BLOCK = 10
"""Queries encoded here in a row, before their requests, for the paired bare encoding."""
INT8_SUFFIX = "-int8"
"""The suffix of an encoder-backend variant whose exported model is quantized to int8 (``openvino-int8``)."""


@dataclass
class Cell:
    """The figures of one method at one concurrency."""

    method: str
    concurrency: int
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    throughput_rps: float
    first_error: str = ""
    app_p50_ms: float = float("nan")
    """Median of the server's own time (its ``Server-Timing: app;dur=``): the app, without HTTP or client."""
    search_p50_ms: float = float("nan")
    """Median of the search's own ``took_ms`` (encoding included): what the searcher did."""
    paired_bare_p50_ms: float = float("nan")
    """Dense methods at concurrency 1: median bare encoding of the same queries, encoded here in blocks of
    ``PAIR_BLOCK`` just before their requests."""


def load_queries(limit: int) -> list[str]:
    """The built-in in-domain queries when present, else a small list."""
    if QUERIES_FILE.is_file():
        lines = [line.strip() for line in QUERIES_FILE.read_text().splitlines() if line.strip()]
        if lines:
            return lines[:limit]
    return FALLBACK_QUERIES[:limit]


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_temporary_index(corpus: Path, folder: Path, int8: bool | None = None) -> Path:
    """Build an index over ``corpus`` into ``folder`` with the ``mlsearch index build`` command: with int8
    embeddings (OpenVINO) or full-precision ones (torch) when ``int8`` says, else with the default encoder."""
    precision = {None: "", True: "-int8", False: "-float"}[int8]
    index_dir = folder / f"index{precision}"
    options = {None: [], True: ["--encoder-backend", "openvino", "--int8"], False: ["--encoder-backend", "torch"]}
    print(f"building an index over {corpus} into {index_dir} …", flush=True)
    subprocess.run(
        [sys.executable, "-m", "cli.app", "index", "build", "--corpus", str(corpus),
         "--index-dir", str(index_dir), "--json", *options[int8]],
        check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
    )
    return index_dir


def index_for(int8: bool, given: Path | None, corpus: Path, folder: Path, built: dict[bool, Path]) -> Path:
    """An index whose embeddings have this precision: ``given`` when they do, else one built once into
    ``folder`` (an int8 encoder cannot search full-precision embeddings, nor the reverse)."""
    if given is not None:
        from indexing.layout import current_version_dir
        from indexing.manifest import Manifest

        if (Manifest.load(current_version_dir(given)).model.quantization == "int8") == int8:
            return given
    if int8 not in built:
        built[int8] = build_temporary_index(corpus, folder, int8)
    return built[int8]


def start_server(
    index_dir: Path, port: int, cache: bool, log: Path, encoder_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``mlsearch serve`` on 127.0.0.1:port (its log goes to ``log``), with extra ``MLSEARCH_*`` settings."""
    env = dict(os.environ)
    env.update(encoder_env or {})
    if not cache:
        env["MLSEARCH_QUERY_CACHE_SIZE"] = str(LOG_HANDOFF_CACHE)
    command = [sys.executable, "-m", "cli.app", "serve", "--index-dir", str(index_dir),
               "--host", "127.0.0.1", "--port", str(port), "--no-watch", "--log-level", "warning"]
    with log.open("wb") as handle:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)


def wait_ready(base: str, server: subprocess.Popen[bytes], log: Path, timeout: float = 180.0) -> dict[str, object]:
    """Poll ``/ready`` until the server has loaded its index; fail if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base, timeout=5.0) as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit(f"the server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
            try:
                response = client.get("/ready")
                if response.status_code == 200:
                    return dict(response.json())
            except httpx.TransportError:
                pass
            time.sleep(0.25)
    raise SystemExit(f"the server was not ready after {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def bare_encoding_ms(encoder: Any, queries: list[str], repeat: int) -> list[float]:
    """Milliseconds of ``encode([query])`` per query with the given (loaded) model, in this thread."""
    for query in queries[:5]:
        encoder.encode([query])
    timings = []
    for i in range(repeat):
        query = queries[i % len(queries)]
        started = time.perf_counter()
        encoder.encode([query])
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def bare_in(pool: ThreadPoolExecutor, encoder: Any) -> BareEncode:
    """A :data:`BareEncode` that encodes in ``pool``'s worker thread, as :func:`bare_encoding_in_worker_ms` does."""

    async def bare(query: str) -> float:
        started = time.perf_counter()
        await asyncio.get_running_loop().run_in_executor(pool, encoder.encode, [query])
        return (time.perf_counter() - started) * 1000

    return bare


def bare_encoding_in_worker_ms(encoder: Any, queries: list[str], repeat: int) -> list[float]:
    """:func:`bare_encoding_ms` in a worker thread, as the service encodes (torch threads differ per thread)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(bare_encoding_ms, encoder, queries, repeat).result()


async def run_cell(
    post: PostJson, method: str, concurrency: int, queries: list[str], total: int, max_seconds: float,
    k: int, offset: int, bare: BareEncode | None = None,
) -> Cell:
    """Send up to ``total`` searches with ``concurrency`` in flight, stopping at ``max_seconds``.

    With ``bare`` (concurrency 1 only), the queries are also encoded here, ``PAIR_BLOCK`` at a time just before
    their requests, so that bare encoding and the service's answers are measured on the same machine state. Not
    one encode right before each request: the encoder's threads in this process were still busy when the request
    reached the server, and slowed its answer by about 1 ms even when the server encoded nothing (a query-cache
    hit: 0.75 ms round trip without the encode here, 1.75 to 1.98 ms with it). Nor back to back: an encoder kept
    busy is faster than one that idles between queries (OpenVINO int8 here: 3.0 ms a query back to back, 3.2 to
    3.5 ms after 1 ms idle, 3.7 to 3.8 ms after 5 ms), and the server's idles between its requests' encodes. So
    the encodes of a block are spaced as the server's are: each after an idle of the cell's median round trip
    so far minus its median bare encoding (none before the first request).
    """
    bare_ms: list[float] = []
    latencies: list[float] = []
    app_ms: list[float] = []
    took_ms: list[float] = []
    errors: list[str] = []
    issued = 0
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        nonlocal issued
        while issued < total and time.perf_counter() < deadline:
            query = queries[(offset + issued) % len(queries)]
            issued += 1
            if bare is not None and concurrency == 1 and (issued - 1) % PAIR_BLOCK == 0:
                idle = max(_median(latencies) - _median(bare_ms), 0.0) / 1000 if latencies else 0.0
                for j in range(PAIR_BLOCK):
                    await asyncio.sleep(idle)
                    bare_ms.append(await bare(queries[(offset + issued - 1 + j) % len(queries)]))
            started = time.perf_counter()
            try:
                response = await post("/search", {"query": query, "k": k, "method": method})
                if response.status != 200:
                    errors.append(f"{response.status} {response.body[:200]!r}")
                    continue
            except CLIENT_ERRORS as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            app_ms.append(server_time_ms(response.headers.get("server-timing", "")))
            took_ms.append(float(response.json().get("took_ms", "nan")))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99]) if latencies else (float("nan"),) * 3
    return Cell(method=method, concurrency=concurrency, requests=issued, errors=len(errors), p50_ms=round(p50, 2),
                p95_ms=round(p95, 2), p99_ms=round(p99, 2), throughput_rps=round(len(latencies) / elapsed, 1),
                first_error=errors[0] if errors else "", app_p50_ms=_median(app_ms), search_p50_ms=_median(took_ms),
                paired_bare_p50_ms=_median(bare_ms))


def server_time_ms(header: str) -> float:
    """The ``app`` duration of a ``Server-Timing`` header in milliseconds (NaN when there is none)."""
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        if name == "app" and "dur=" in params:
            return float(params.split("dur=", 1)[1].split(";", 1)[0])
    return float("nan")


def _median(values: list[float]) -> float:
    """The rounded median of the values that are numbers (NaN when none is)."""
    numbers = [v for v in values if not math.isnan(v)]
    return round(statistics.median(numbers), 3) if numbers else float("nan")


async def run_load(
    base: str, methods: list[str], levels: list[int], queries: list[str], total: int, max_seconds: float, k: int,
    client: str = "lean", bare: BareEncode | None = None,
) -> list[Cell]:
    """Every method at every concurrency, after a short warm-up per method, sent with ``client`` (lean or httpx).

    ``bare`` encodes one query in this process and returns its milliseconds: given, the dense and hybrid cells at
    concurrency 1 measure it before each request (see :func:`run_cell`).
    """
    cells = []
    sent = 0  # each cell goes on through the queries where the last one stopped: no query is asked twice in a row
    limits = httpx.Limits(max_connections=max(levels) + 4, max_keepalive_connections=max(levels) + 4)
    lean = LeanClient(base)
    async with httpx.AsyncClient(base_url=base, timeout=60.0, limits=limits) as httpx_client:
        post = lean.post_json if client == "lean" else httpx_poster(httpx_client)
        for method in methods:
            await run_cell(post, method, 2, queries, 10, 10.0, k, offset=sent)
            sent += 10
            for level in levels:
                paired = bare if method in ENCODING_METHODS else None
                cell = await run_cell(post, method, level, queries, total, max_seconds, k, offset=sent, bare=paired)
                sent += cell.requests
                print(f"  {method:7} c={level:<3} {cell.requests:5} requests  p50 {cell.p50_ms:7.2f} ms "
                      f"(app {cell.app_p50_ms:.2f}, search {cell.search_p50_ms:.2f})  "
                      f"{cell.throughput_rps:7.1f} req/s  errors {cell.errors}", flush=True)
                cells.append(cell)
    await lean.aclose()
    return cells


@dataclass
class Variant:
    """One served configuration: an encoder backend (``openvino-int8``: int8) with micro-batching on or off."""

    name: str
    micro_batch: bool
    methods: list[str]
    cells: list[Cell] = field(default_factory=list)
    bare: list[float] = field(default_factory=list)
    bare_after: list[float] = field(default_factory=list)
    bare_main: list[float] = field(default_factory=list)
    ready: dict[str, object] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``torch``, ``openvino+batch``, …"""
        return self.name + ("+batch" if self.micro_batch else "")

    @property
    def backend(self) -> str:
        """The encoder backend: ``torch``, ``openvino`` or ``onnx``."""
        return self.name.removesuffix(INT8_SUFFIX)

    @property
    def int8(self) -> bool:
        """Whether the exported model is quantized to int8."""
        return self.name.endswith(INT8_SUFFIX)

    def env(self) -> dict[str, str]:
        """The server's settings for this variant."""
        return {"MLSEARCH_ENCODER_BACKEND": self.backend, "MLSEARCH_ENCODER_INT8": str(self.int8).lower(),
                "MLSEARCH_MICRO_BATCH": str(self.micro_batch).lower(),
                "MLSEARCH_ENCODER_CACHE_DIR": os.environ.get("MLSEARCH_ENCODER_CACHE_DIR", str(EXPORT_CACHE))}


def is_default(name: str, micro_batch: bool) -> bool:
    """Whether a variant (``openvino-int8``, micro-batching on) is what ``mlsearch serve`` runs when nothing is set."""
    from mlsearch.configs import DEFAULT_ENCODER_BACKEND, DEFAULT_ENCODER_INT8
    from mlsearch.settings import Settings

    default_name = DEFAULT_ENCODER_BACKEND + (INT8_SUFFIX if DEFAULT_ENCODER_INT8 else "")
    return name == default_name and micro_batch == Settings.model_fields["micro_batch"].default


def bare_for(cell: Cell, before_load_p50: float) -> tuple[float, bool]:
    """The bare encoding p50 a cell is read against: its paired one when it has one (True), else the one measured
    before the load (False)."""
    if math.isnan(cell.paired_bare_p50_ms):
        return before_load_p50, False
    return cell.paired_bare_p50_ms, True


def report(variants: list[Variant], cache: bool) -> bool:
    """Print each variant's table and the goals; True when every goal holds."""
    ok = True
    for variant in variants:
        bare_p50, bare_p95 = (float(v) for v in np.percentile(variant.bare, [50, 95]))
        print()
        print(f"== {variant.label}: index version {variant.ready.get('index_version')}, "
              f"query cache {'on' if cache else f'of {LOG_HANDOFF_CACHE} (every request encodes)'}")
        print(f"bare query encoding (encode([query]) in a worker thread, same model and backend, this run): "
              f"p50 {bare_p50:.2f} ms, p95 {bare_p95:.2f} ms; p50 {float(np.percentile(variant.bare_after, 50)):.2f}"
              f" ms again after the load; p50 {statistics.median(variant.bare_main):.2f} ms in the main thread")
        print(f"{'method':8} {'conc':>4} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
              f"{'req/s':>8} {'p50-bare':>8} {'app p50':>8} {'search':>8} {'paired bare':>11}")
        for c in variant.cells:
            over = f"{c.p50_ms - bare_for(c, bare_p50)[0]:8.2f}" if c.method in ENCODING_METHODS else f"{'':8}"
            print(f"{c.method:8} {c.concurrency:4} {c.requests:8} {c.errors:6} {c.p50_ms:8.2f} {c.p95_ms:8.2f} "
                  f"{c.p99_ms:8.2f} {c.throughput_rps:8.1f} {over} {c.app_p50_ms:8.2f} {c.search_p50_ms:8.2f} "
                  f"{c.paired_bare_p50_ms:11.2f}")
            if c.first_error:
                print(f"         first error: {c.first_error}")
    print()
    for variant in variants:
        bare_p50 = float(np.percentile(variant.bare, 50))
        dense_c1 = _cell(variant, "dense", 1)
        if dense_c1 is not None:
            bare_c1, paired = bare_for(dense_c1, bare_p50)
            gap = dense_c1.p50_ms - bare_c1
            holds = bool(gap <= 2.0)
            ok = ok and holds
            which = "measured between its requests" if paired else "measured before the load"
            print(f"goal ({variant.label}): dense p50 at c=1 - bare encoding ({which}) <= 2 ms: "
                  f"{dense_c1.p50_ms:.2f} - {bare_c1:.2f} = {gap:.2f} ms ({dense_c1.p50_ms / bare_c1:.2f}x) -> "
                  f"{'HOLDS' if holds else 'MISSED'}")
        default = is_default(variant.name, variant.micro_batch)
        for method in ("bm25", "lsi"):
            cell = _cell(variant, method, 1)
            if cell is not None:
                holds = bool(cell.p50_ms <= 1.5)
                ok = ok and (holds or not default)
                print(f"{'goal' if default else 'also'} ({variant.label}{', the defaults' if default else ''}): "
                      f"{method} p50 at c=1 <= 1.5 ms: {cell.p50_ms:.2f} ms -> {'HOLDS' if holds else 'MISSED'}")
        top = max((c.concurrency for c in variant.cells), default=0)
        errors = sum(c.errors for c in variant.cells if c.concurrency == top)
        ok = ok and errors == 0
        print(f"goal ({variant.label}): no errors at c={top}: {errors} errors -> "
              f"{'HOLDS' if errors == 0 else 'MISSED'}")
    baseline = next((v for v in variants if v.backend == "torch" and not v.micro_batch), None)
    base_cell = _cell(baseline, "dense", 16) if baseline else None
    if base_cell is not None:
        for variant in variants:
            cell = _cell(variant, "dense", 16)
            if cell is None or variant is baseline:
                continue
            ratio = cell.throughput_rps / base_cell.throughput_rps
            print(f"dense throughput at c=16, {variant.label}: {cell.throughput_rps:.1f} req/s = {ratio:.2f}x torch "
                  f"without micro-batching ({base_cell.throughput_rps:.1f}) (goal >= 3x: "
                  f"{'HOLDS' if ratio >= 3 else 'MISSED'})")
    return ok


def _cell(variant: Variant | None, method: str, concurrency: int) -> Cell | None:
    if variant is None:
        return None
    return next((c for c in variant.cells if c.method == method and c.concurrency == concurrency), None)


def serve_variant(
    variant: Variant, index_dir: Path, folder: Path, args: argparse.Namespace, levels: list[int], queries: list[str],
) -> None:
    """Serve the index with this variant's settings, measure bare encoding and the load, then stop the server."""
    import torch

    from indexing.embedding import open_encoder
    from indexing.layout import current_version_dir
    from indexing.manifest import Manifest
    from mlsearch.configs import EncoderConfig
    from mlsearch.settings import Settings

    model = Manifest.load(current_version_dir(index_dir)).model.name
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = folder / f"server-{variant.label}.log"
    server = start_server(index_dir, port, args.cache, log, variant.env())
    try:
        variant.ready = wait_ready(base, server, log, timeout=600)
        threads = Settings().serve_torch_threads
        if threads:  # as `mlsearch serve` does, so that both encode alike
            torch.set_num_threads(threads)
        print(f"serving {index_dir} at {base} ({variant.label}); bare encoding with {model} on {variant.backend}, "
              f"{threads or 'default'} thread(s) …", flush=True)
        encoder = open_encoder(model, EncoderConfig(backend=variant.backend, int8=variant.int8, cache_dir=Path(
            variant.env()["MLSEARCH_ENCODER_CACHE_DIR"]), threads=threads))
        variant.bare_main = bare_encoding_ms(encoder, queries, repeat=50)
        variant.bare = bare_encoding_in_worker_ms(encoder, queries, repeat=min(200, max(50, len(queries))))
        with ThreadPoolExecutor(max_workers=1) as pool:
            variant.cells = asyncio.run(run_load(
                base, variant.methods, levels, queries, args.requests, args.max_seconds, args.k, args.client,
                bare=bare_in(pool, encoder),
            ))
        variant.bare_after = bare_encoding_in_worker_ms(encoder, queries, repeat=50)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def rerank_latency(index_dir: Path, reranker: Path, queries: list[str], top_n: int, k: int) -> dict[str, float]:
    """In-process hybrid search latency without and with the cross-encoder reranker (``--rerank PATH``).

    Returns:
        p50 and p95 in ms of each, and the p50 cost of reranking ``top_n`` results.
    """
    from indexing.backends.configs import search_config
    from indexing.embedding import load_encoder
    from indexing.manifest import Manifest
    from mlsearch.settings import Settings
    from search.searcher import Searcher

    settings = Settings(index_dir=index_dir, reranker=reranker, rerank_top_n=top_n, query_cache_size=0)
    searcher = Searcher.open(index_dir, search_config(settings),
                             encoder=load_encoder(Manifest.load(searcher_dir(index_dir)).model.name))
    searcher.search("warm up", k=k, method="hybrid", rerank=True)
    times: dict[bool, list[float]] = {False: [], True: []}
    for query in queries:
        for rerank in (False, True):
            started = time.perf_counter()
            searcher.search(query, k=k, method="hybrid", rerank=rerank)
            times[rerank].append((time.perf_counter() - started) * 1000)
    out = {f"{name}_p{q}_ms": float(np.percentile(times[flag], q))
           for name, flag in (("hybrid", False), ("reranked", True)) for q in (50, 95)}
    out["rerank_cost_p50_ms"] = out["reranked_p50_ms"] - out["hybrid_p50_ms"]
    print(f"reranker {reranker}, top {top_n}, {len(queries)} queries (in-process, hybrid): " + ", ".join(
        f"{key} {value:.1f}" for key, value in out.items()))
    return out


def searcher_dir(index_dir: Path) -> Path:
    """The version folder an index directory points to."""
    from indexing.layout import current_version_dir

    return current_version_dir(index_dir)


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--index-dir", type=Path, help="An index to serve (built from --corpus when omitted, or "
                        "when a variant needs the other precision).")
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--concurrency", default=",".join(map(str, LEVELS)))
    parser.add_argument("--requests", type=int, default=200, help="Requests per method and concurrency.")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="Time limit per method and concurrency.")
    parser.add_argument("--queries", type=int, default=200, help="How many distinct queries to cycle through.")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--cache", action="store_true",
                        help="Keep the server's full query-embedding cache (cycled queries hit it).")
    parser.add_argument("--encoder-backends", default="torch,openvino-int8",
                        help="Served one after the other: torch, openvino, onnx, each exported one also as -int8 "
                             "(each is served an index of its own precision: --index-dir, else one built).")
    parser.add_argument("--micro-batch", choices=("both", "on", "off"), default="both")
    parser.add_argument("--client", choices=("lean", "httpx"), default="lean",
                        help="lean: a keep-alive HTTP/1.1 client (bench/http_client.py); httpx: httpx's asyncio one.")
    parser.add_argument("--json", type=Path, help="Also write the figures to this file.")
    parser.add_argument("--rerank", type=Path, help="Also time hybrid search reranked by this cross-encoder folder.")
    parser.add_argument("--rerank-top-n", type=int, default=20)
    args = parser.parse_args()

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    batching = {"both": [False, True], "on": [True], "off": [False]}[args.micro_batch]
    backends = [b.strip() for b in args.encoder_backends.split(",") if b.strip()]
    dense_only = [m for m in methods if m == "dense"] or methods
    variants = [Variant(backend, mb, methods if i == 0 or is_default(backend, mb) else dense_only)
                for i, (backend, mb) in enumerate((b, m) for b in backends for m in batching)]
    queries = load_queries(args.queries)
    print(f"{len(queries)} queries from {QUERIES_FILE if QUERIES_FILE.is_file() else 'the built-in list'}; "
          f"variants {', '.join(v.label for v in variants)}; client {args.client}")
    with tempfile.TemporaryDirectory(prefix="mlsearch-load-") as tmp:
        folder = Path(tmp)
        built: dict[bool, Path] = {}
        for variant in variants:
            index_dir = index_for(variant.int8, args.index_dir, args.corpus, folder, built)
            serve_variant(variant, index_dir, folder, args, levels, queries)
        ok = report(variants, args.cache)
        if args.rerank:
            float_index = index_for(False, args.index_dir, args.corpus, folder, built)  # the cross-encoder's torch
            rerank_latency(float_index, args.rerank, queries[:50], args.rerank_top_n, args.k)
        if args.json:
            args.json.write_text(json.dumps({
                "variants": [{"label": v.label, "backend": v.backend, "int8": v.int8, "micro_batch": v.micro_batch,
                              "bare_encoding_p50_ms": statistics.median(v.bare),
                              "bare_encoding_main_thread_p50_ms": statistics.median(v.bare_main),
                              "cells": [asdict(c) for c in v.cells]} for v in variants],
                "client": args.client, "goals_hold": bool(ok),
            }, indent=2))


if __name__ == "__main__":
    main()
