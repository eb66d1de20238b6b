"""Soak: a real ``mlsearch serve`` under mixed traffic for minutes while the index is rebuilt and swapped.

    python -m bench.soak [--minutes 10] [--concurrency 16] [--rebuild-every 120] [--max-requests 2000000]

It copies ``corpus/`` into a temporary folder, builds an index over it with the bundled model, and starts
``mlsearch serve`` on a free loopback port with the index watcher on. Then ``--concurrency`` clients send
searches (every method, FAISS and Annoy), comparisons, ``/drift``, ``/index`` and document writes
(``PUT``/``DELETE /documents``) until the time or the request bound is reached, while a full rebuild (one article
edited, then the same ``build_index`` as ``mlsearch index build``) starts every ``--rebuild-every`` seconds, the
first after half that, so 10 minutes with the default 120 s hold 5 (``--rebuilds``).

The rebuilds run in one builder process that stays up between them, as a watcher would (``--cli-rebuilds``
starts ``mlsearch index build`` each time instead: on the shared 2-core machine each took 136-152 s under the
soak, nearly all of it start-up, imports and model). Each edit adds a word found nowhere else; a rebuild counts as
published once a BM25 search for its word finds it through the server, and at the end every edit's word must
still be found (a document write that published later must not have undone a rebuild). When rebuilds run
slower than the schedule, the next starts as soon as the last is published, and the clients keep going past
``--minutes`` until every rebuild is published (at most 5 more minutes): every swap happens under load.

It prints the requests, the failures by status (and which requests failed), p50/p95, RSS and open file
descriptors per minute, the server's RSS and descriptors at start, after warm-up and at the end, the versions
served, and the query log's rows against its bound. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.load import ROOT, free_port, load_queries, wait_ready

ADMIN_KEY = "soak-admin-key"
LOG_MAX_ROWS = 5_000
SEARCHES = [
    {"method": "dense", "backend": "faiss"},
    {"method": "dense", "backend": "annoy"},
    {"method": "lsi"},
    {"method": "bm25"},
    {"method": "hybrid"},
]


@dataclass
class Sample:
    """One answered (or failed) request."""

    at: float
    kind: str
    status: int
    ms: float


@dataclass
class Soak:
    """Everything the soak measured."""

    samples: list[Sample] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    rebuilds: list[tuple[float, float, float, str]] = field(default_factory=list)  # done at, build s, to serve s
    resources: list[tuple[float, int, int]] = field(default_factory=list)
    documents_written: int = 0
    markers: list[str] = field(default_factory=list)  # each rebuild's edit word
    markers_found_at_end: int = 0


def process_resources(pid: int) -> tuple[int, int]:
    """RSS in KiB and the number of open file descriptors of a process (from /proc)."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def build(corpus: Path, index_dir: Path, state_dir: Path) -> str:
    """``mlsearch index build`` over ``corpus`` into ``index_dir``; returns the version it published."""
    env = {**os.environ, "MLSEARCH_STATE_DIR": str(state_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "cli.app", "index", "build", "--corpus", str(corpus), "--index-dir", str(index_dir),
         "--json"], cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )
    return str(json.loads(done.stdout)["version"])


_BUILDER: dict[str, Any] = {}


def _start_builder(corpus: str, index_dir: str, state_dir: str) -> None:
    """In the builder process: the settings ``mlsearch index build`` would use, and the model, loaded once."""
    from indexing.backends.configs import encoder_config
    from indexing.embedding import open_encoder
    from mlsearch.settings import Settings

    settings = Settings(corpus_dir=Path(corpus), index_dir=Path(index_dir), state_dir=Path(state_dir))
    _BUILDER["settings"] = settings
    _BUILDER["encoder"] = open_encoder(settings.model, encoder_config(settings))


def _build_in_builder() -> str:
    """In the builder process: one full build, as ``mlsearch index build`` does it; returns the version."""
    from indexing.backends.configs import build_config
    from indexing.build import build_index

    settings = _BUILDER["settings"]
    return build_index(build_config(settings), _BUILDER["encoder"], backends=settings.backends).version


class Builder:
    """Runs full builds of one index: in one process kept up between builds, or a CLI process per build."""

    def __init__(self, corpus: Path, index_dir: Path, state_dir: Path, cli: bool = False) -> None:
        self.args = (corpus, index_dir, state_dir)
        self.pool: ProcessPoolExecutor | None = None
        if not cli:
            self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_start_builder,
                                            initargs=(str(corpus), str(index_dir), str(state_dir)))
            self.pool.submit(len, "").result()  # started: imports and model loaded before the soak begins

    def build(self) -> str:
        """Build and publish a version; returns its name."""
        if self.pool is None:
            return build(*self.args)
        return str(self.pool.submit(_build_in_builder).result())

    def close(self) -> None:
        """Stop the builder process."""
        if self.pool is not None:
            self.pool.shutdown()


def marker(n: int) -> str:
    """A word found nowhere but in the ``n``-th soak edit (letters only, so the analyzer keeps it whole)."""
    return "zqsoak" + "".join(chr(ord("a") + int(d)) for d in str(n))


def found(base: str, word: str) -> bool:
    """Whether a BM25 search through the server finds ``word``."""
    try:
        response = httpx.post(f"{base}/search", json={"query": word, "method": "bm25", "k": 1}, timeout=30)
        return response.status_code == 200 and bool(response.json()["results"])
    except httpx.HTTPError:
        return False


def wait_found(base: str, word: str, timeout: float = 120.0) -> bool:
    """Whether the server finds ``word`` within ``timeout`` seconds (its watcher reloads the new version)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found(base, word):
            return True
        time.sleep(0.5)
    return False


def rebuild_loop(base: str, corpus: Path, builder: Builder, every: float, count: int, stop: threading.Event,
                 rebuilding: threading.Event, soak: Soak, started: float) -> None:
    """Edit one article and rebuild ``count`` times: first after ``every / 2`` s, then every ``every`` s.

    A rebuild is recorded as ``published`` once the server finds its edit; ``rebuilding`` stays set until all
    ``count`` are done.
    """
    articles = sorted(corpus.glob("*.md"))
    rebuilding.set()
    wait = every / 2
    for n in range(1, count + 1):
        if stop.wait(wait):
            break
        article = articles[n % len(articles)]
        with article.open("a") as handle:
            handle.write(f"\n\nSoak edit {n}: regularization keeps the weights small ({marker(n)}).\n")
        t = time.perf_counter()
        built = t
        try:
            version = builder.build()
            built = time.perf_counter()
            outcome = "published" if wait_found(base, marker(n)) else f"built {version}, its edit never found"
        except subprocess.CalledProcessError as exc:
            outcome = f"build failed: {exc.stderr[-300:]}"
        except Exception as exc:  # the builder process's error, whatever it is, is the outcome to report
            outcome = f"build failed: {exc!r}"
        now = time.perf_counter()
        soak.rebuilds.append((now - started, built - t, now - built, outcome))
        soak.markers.append(marker(n))
        wait = max(0.0, every - (now - t))  # one rebuild starts every `every` seconds, or at once when late
    rebuilding.clear()


def running(deadline: float, rebuilding: threading.Event, grace: float = 300.0) -> bool:
    """Whether the load goes on: before the deadline, or after it until the rebuilds are done (up to ``grace``)."""
    now = time.monotonic()
    return now < deadline or (rebuilding.is_set() and now < deadline + grace)


async def client_loop(base: str, worker: int, deadline: float, rebuilding: threading.Event, budget: list[int],
                      queries: list[str], soak: Soak, started: float) -> None:
    """One client: a mix of searches, comparisons, drift, index info and document writes."""
    rng = random.Random(worker)
    headers = {"X-API-Key": ADMIN_KEY}
    async with httpx.AsyncClient(base_url=base, timeout=60.0) as client:
        i = 0
        while running(deadline, rebuilding) and budget[0] > 0:
            budget[0] -= 1
            i += 1
            query = rng.choice(queries)
            roll = rng.random()
            if roll < 0.70:
                kind, request = "search", client.post("/search", json={"query": query, "k": 10,
                                                                        **rng.choice(SEARCHES)})
            elif roll < 0.85:
                kind, request = "compare", client.post("/compare", json={"query": query, "k": 5,
                                                                          "methods": ["lsi", "bm25", "dense"]})
            elif roll < 0.90:
                kind, request = "drift", client.get("/drift")
            elif roll < 0.95:
                kind, request = "index", client.get("/index")
            elif roll < 0.98:
                doc = f"soak-{worker}-{i % 5}"
                kind = "put_document"
                request = client.put(f"/documents/{doc}", headers=headers, json={
                    "title": f"Soak {doc}", "text": f"# Soak {doc}\n\n{query}. Written at request {i}.",
                    "tags": ["soak"]})
            else:
                kind, request = "delete_document", client.delete(f"/documents/soak-{worker}-{i % 5}",
                                                                 headers=headers)
            t = time.perf_counter()
            try:
                response = await request
                status = response.status_code
                if status == 200 and kind in ("search", "compare"):
                    soak.versions[response.json().get("index_version", "")] += 1
                if status == 202:
                    soak.documents_written += 1
                if kind == "delete_document" and status == 404:
                    status = 200  # deleting a document that is not there (yet, or any more) is a fine answer
            except httpx.HTTPError as exc:
                status = 0
                soak.errors[type(exc).__name__] += 1
            soak.samples.append(Sample(time.perf_counter() - started, kind, status, (time.perf_counter() - t) * 1e3))


async def monitor(pid: int, deadline: float, rebuilding: threading.Event, soak: Soak, started: float,
                  every: float = 10.0) -> None:
    """Sample the server's RSS and open descriptors every ``every`` seconds."""
    while running(deadline, rebuilding):
        soak.resources.append((time.perf_counter() - started, *process_resources(pid)))
        await asyncio.sleep(every)


async def drive(base: str, pid: int, args: argparse.Namespace, queries: list[str], soak: Soak,
                started: float, deadline: float, rebuilding: threading.Event) -> None:
    """Run the clients and the monitor until the deadline (and the rebuild in flight) or the request budget."""
    budget = [args.max_requests]
    await asyncio.gather(
        monitor(pid, deadline, rebuilding, soak, started),
        *(client_loop(base, w, deadline, rebuilding, budget, queries, soak, started)
          for w in range(args.concurrency)),
    )
    soak.resources.append((time.perf_counter() - started, *process_resources(pid)))


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))] if ordered else float("nan")


def report(soak: Soak, drift_log: dict[str, object], log_bytes: int, minutes: float) -> None:
    """Print the figures (``minutes``: how long the load ran)."""
    samples = soak.samples
    ok = [s for s in samples if 200 <= s.status < 300]
    failed = Counter(s.status for s in samples if not 200 <= s.status < 300)
    print(f"\nrequests: {len(samples)} in {minutes:g} min ({len(samples) / (minutes * 60):.1f}/s); "
          f"answered 2xx: {len(ok)}; failed: {sum(failed.values())} {dict(failed) or ''}"
          f"{' transport: ' + str(dict(soak.errors)) if soak.errors else ''}")
    print("by kind: " + ", ".join(f"{k} {v}" for k, v in Counter(s.kind for s in samples).most_common()))
    for s in samples:
        if not 200 <= s.status < 300:
            print(f"  failed: {s.kind} at {s.at:.0f} s after {s.ms:.0f} ms, status {s.status}")
    print("\nminute | requests | search p50 / p95 ms | all p50 / p95 ms | failed | RSS MiB | fds")
    by_minute: dict[int, list[Sample]] = defaultdict(list)
    for s in samples:
        by_minute[int(s.at // 60)].append(s)
    for minute in sorted(by_minute):
        group = by_minute[minute]
        search = [s.ms for s in group if s.kind == "search"]
        every = [s.ms for s in group]
        bad = sum(1 for s in group if not 200 <= s.status < 300)
        last = [r for r in soak.resources if r[0] < (minute + 1) * 60][-1:] or soak.resources[:1]
        rss, fds = (f"{last[0][1] / 1024:7.0f}", f"{last[0][2]:>3}") if last else ("      -", "  -")
        print(f"{minute + 1:>6} | {len(group):>8} | {percentile(search, 50):8.1f} / {percentile(search, 95):7.1f} | "
              f"{percentile(every, 50):7.1f} / {percentile(every, 95):7.1f} | {bad:>6} | {rss} | {fds}")
    published = sum(1 for r in soak.rebuilds if r[3] == "published")
    print(f"\nrebuilds published (served by the server): {published} of {len(soak.rebuilds)}; "
          f"versions that answered searches: {len(soak.versions)}")
    for at, build_s, serve_s, outcome in soak.rebuilds:
        print(f"  done at {at:5.0f} s: build {build_s:4.0f} s, its edit found after {serve_s:4.1f} s more: {outcome}")
    print(f"rebuilds' edits still found at the end: {soak.markers_found_at_end} of {len(soak.markers)}")
    warm = next((r for r in soak.resources if r[0] >= 60), soak.resources[0] if soak.resources else None)
    if warm and soak.resources:
        end = soak.resources[-1]
        first = soak.resources[0]
        print(f"server RSS: {first[1] / 1024:.0f} MiB at start, {warm[1] / 1024:.0f} MiB after warm-up (1 min), "
              f"{end[1] / 1024:.0f} MiB at the end ({(end[1] / warm[1] - 1) * 100:+.1f}% after warm-up); "
              f"max {max(r[1] for r in soak.resources) / 1024:.0f} MiB")
        print(f"open file descriptors: {first[2]} at start, {warm[2]} after warm-up, {end[2]} at the end "
              f"(min {min(r[2] for r in soak.resources)}, max {max(r[2] for r in soak.resources)})")
    print(f"query log: {drift_log.get('rows')} rows (bound {drift_log.get('max_rows')}), "
          f"{drift_log.get('written')} written, {drift_log.get('dropped')} dropped; {log_bytes / 1e6:.1f} MB on disk")
    print(f"documents written: {soak.documents_written} (202 Accepted)")
    search = [s.ms for s in ok if s.kind == "search"]
    if search:
        print(f"search latency over the run: p50 {statistics.median(search):.1f} ms, "
              f"p95 {percentile(search, 95):.1f} ms")


def main() -> None:
    """Run the soak and print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rebuild-every", type=float, default=120.0, help="Seconds between rebuilds.")
    parser.add_argument("--rebuilds", type=int, default=None,
                        help="Rebuilds to publish (default: one per --rebuild-every in --minutes).")
    parser.add_argument("--cli-rebuilds", action="store_true",
                        help="Run each rebuild as its own `mlsearch index build` process.")
    parser.add_argument("--max-requests", type=int, default=2_000_000, help="Stop after this many requests.")
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    parser.add_argument("--keep", action="store_true",
                        help="Keep the temporary folder (index, state, server.log) and print where it is.")
    args = parser.parse_args()
    queries = load_queries(500)
    folder = Path(tempfile.mkdtemp(prefix="mlsearch-soak-"))
    try:
        soak_in(folder, args, queries)
    finally:
        if args.keep:
            print(f"kept {folder} (server log: {folder / 'server.log'})")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def soak_in(folder: Path, args: argparse.Namespace, queries: list[str]) -> None:
    """Build an index in ``folder``, serve it, drive the load with rebuilds, and print the figures."""
    corpus = folder / "corpus"
    shutil.copytree(args.corpus, corpus)
    index_dir, state_dir = folder / "indexes" / "default", folder / "state"
    print(f"building an index over a copy of {args.corpus} …", flush=True)
    build(corpus, index_dir, state_dir)
    builder = Builder(corpus, index_dir, state_dir, cli=args.cli_rebuilds)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = folder / "server.log"
    env = {**os.environ, "MLSEARCH_ADMIN_API_KEY": ADMIN_KEY, "MLSEARCH_STATE_DIR": str(state_dir),
           "MLSEARCH_DRIFT_LOG_MAX_ROWS": str(LOG_MAX_ROWS), "MLSEARCH_WATCH_INTERVAL_S": "2"}
    command = [sys.executable, "-m", "cli.app", "serve", "--index-dir", str(index_dir), "--host", "127.0.0.1",
               "--port", str(port), "--watch", "--log-level", "warning"]
    with log.open("wb") as handle:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    soak = Soak()
    stop = threading.Event()
    try:
        wait_ready(base, server, log, timeout=600)
        print(f"serving at {base}; {args.concurrency} clients for {args.minutes:g} min, a rebuild every "
              f"{args.rebuild_every:g} s …", flush=True)
        started = time.perf_counter()
        deadline = time.monotonic() + args.minutes * 60
        rebuilding = threading.Event()
        count = args.rebuilds if args.rebuilds is not None else int(args.minutes * 60 // args.rebuild_every)
        rebuilder = threading.Thread(target=rebuild_loop, args=(
            base, corpus, builder, args.rebuild_every, count, stop, rebuilding, soak, started,
        ), daemon=True)
        rebuilder.start()
        asyncio.run(drive(base, server.pid, args, queries, soak, started, deadline, rebuilding))
        ran_minutes = (time.perf_counter() - started) / 60
        stop.set()
        rebuilder.join(timeout=600)
        soak.markers_found_at_end = sum(found(base, word) for word in soak.markers)
        drift = httpx.get(f"{base}/drift", timeout=60).json()
        log_file = Path(str(drift.get("log", {}).get("path", "")))
        log_bytes = sum(p.stat().st_size for p in log_file.parent.glob(log_file.name + "*")) \
            if log_file.name else 0
    finally:
        stop.set()
        builder.close()
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    report(soak, dict(drift.get("log", {})), log_bytes, ran_minutes)
    lines = log.read_text(errors="replace").splitlines()
    errors = [line for line in lines if "Traceback" in line or "ERROR" in line]
    print(f"server log: {len(errors)} error lines; exit code {server.returncode} after SIGTERM")
    for line in errors[:10]:
        print(f"  {line[:200]}")


if __name__ == "__main__":
    main()
