"""Document-write benchmark: one PUT into a big index until searchable, then concurrent writes under search load.

Run: ``.venv/bin/python -m bench.documents [--chunks 50000] [--backends faiss,annoy,lsi,bm25] [--model fake|NAME]``

1. Builds an index of about ``--chunks`` chunks from synthetic Markdown documents (ten sections each, one chunk
   per section) with a fast deterministic fake encoder (384 dimensions; ``--model all-MiniLM-L6-v2`` for the
   real one, far slower to build), with every backend built by default unless ``--backends`` says otherwise.
2. Starts the service in-process (FastAPI TestClient) and sends one ``PUT /documents/{id}`` of a new document
   whose id sorts in the middle of the index (so half the chunks move), then one that edits an existing
   document; after each it polls ``/search`` until the document's new text is found: the time from the PUT to
   the first search that finds it, how many chunks the update embedded, and where the update spent its time.
   Each time it then waits for the background refit (LSI, Annoy) that makes the index equal to a clean rebuild.
3. Sends ``--writes`` PUTs and DELETEs from 8 threads while 2 threads search without pause, waits until every
   write is served and refitted, and counts failed searches.
4. Rebuilds the final corpus from scratch into another directory and compares chunk ids, vectors and the
   results of 20 queries (every method and vector backend) with the incrementally updated index.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import random
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.state import searcher_factory
from indexing.backends.configs import build_config, search_config
from indexing.build import build_index
from indexing.embedding import Encoder, load_encoder
from indexing.layout import current_version_dir
from indexing.store import ChunkStore
from mlsearch.catalog import (
    DEFAULT_BUILD_BACKENDS,
    DEFAULT_VECTOR_BACKEND,
    METHOD_NAMES,
    VECTOR_BACKEND_NAMES,
    required_backends,
)
from mlsearch.settings import Settings
from search.searcher import Searcher
from tests.fakes import HashingEncoder

KEY = "bench-admin-key"
HEADERS = {"X-API-Key": KEY}
SECTIONS = 10


class FastHashingEncoder(HashingEncoder):
    """The tests' hashing encoder with its token vectors cached (same vectors, much faster on big corpora)."""

    @functools.lru_cache(maxsize=200_000)  # noqa: B019 - one encoder per run
    def _token_vector(self, token: str) -> np.ndarray:
        return super()._token_vector(token)


def _vocabulary(rng: random.Random, size: int = 3000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choices(letters, k=rng.randrange(3, 10))) for _ in range(size)]


def _document(rng: random.Random, words: Sequence[str], title: str) -> str:
    sections = [
        f"## Part {i}\n\n" + " ".join(rng.choices(words, k=rng.randrange(60, 110))) + "."
        for i in range(SECTIONS)
    ]
    return f"# {title}\n\n" + "\n\n".join(sections)


def _write_corpus(folder: Path, n_docs: int, rng: random.Random, words: Sequence[str]) -> None:
    folder.mkdir(parents=True)
    for i in range(n_docs):
        (folder / f"doc{i:06d}.md").write_text(_document(rng, words, f"Document {i}"))


def _plans(backends: Sequence[str]) -> list[tuple[str, str]]:
    """Every (method, vector backend) pair the index can answer."""
    vectors = [b for b in backends if b in VECTOR_BACKEND_NAMES] or [DEFAULT_VECTOR_BACKEND]
    plans: dict[tuple[str, ...], tuple[str, str]] = {}
    for method in METHOD_NAMES:
        for vector in vectors:
            used = tuple(required_backends(method, vector))
            if set(used) <= set(backends):
                plans.setdefault(used, (method, vector))
    return list(plans.values())


def _results(index_dir: Path, settings: Settings, encoder: Encoder, queries: Sequence[str]) -> list[object]:
    searcher = Searcher.open(index_dir, search_config(settings), encoder=encoder)
    out: list[object] = []
    for query in queries:
        for method, backend in _plans(settings.backends):
            hits = searcher.search(query, k=10, method=method, backend=backend).hits
            out.append([(h.id, round(h.score, 4)) for h in hits])
    searcher.close()
    return out


def _wait_for_refit(client: TestClient, since: float) -> float:
    """Seconds from ``since`` until the served version has nothing left to refit."""
    while True:
        backends = client.get("/index").json()["manifest"]["backends"]
        if not any(int(info.get("pending_refit", 0) or 0) for info in backends.values()):
            return time.perf_counter() - since
        time.sleep(0.1)


def _one_put(client: TestClient, app: Any, doc_id: str, text: str, label: str) -> None:
    """PUT one document, poll until a search finds its text, print the figures, and wait for the refit."""
    query = text.split("\n\n")[2][:200]
    started = time.perf_counter()
    answer = client.put(f"/documents/{doc_id}", json={"text": text}, headers=HEADERS)
    assert answer.status_code == 202, answer.text
    acknowledged = time.perf_counter() - started
    seq = answer.json()["seq"]
    service = app.state.service
    while True:  # wait for the served version (checked in-process: searching in a loop would slow the update)
        if service.searcher is not None and service.searcher.manifest.corpus.get("document_seq", 0) >= seq:
            hits = client.post("/search", json={"query": query, "k": 5}).json()["results"]
            if any(h["doc_id"] == doc_id for h in hits):
                break
        time.sleep(0.02)
    searchable = time.perf_counter() - started
    served = client.get("/index").json()
    summary = app.state.documents.last_summary
    stages = ", ".join(f"{name} {seconds:.2f}" for name, seconds in summary.timings.items())
    print(f"one PUT      {label}: acknowledged in {acknowledged * 1000:.0f} ms, searchable after {searchable:.2f} s; "
          f"re-embedded {served['counts']['embedded']} chunks, reused {served['counts']['reused']}; "
          f"update {summary.seconds:.2f} s ({stages}), {summary.cpu_seconds:.2f} s of CPU")
    refit = _wait_for_refit(client, started)
    print(f"             refit (LSI, Annoy) published {refit:.1f} s after the PUT: equal to a clean rebuild again")


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=50_000)
    parser.add_argument("--backends", default=",".join(DEFAULT_BUILD_BACKENDS))
    parser.add_argument("--writes", type=int, default=100,
                        help="Concurrent writes in step 3; 0 stops after the single PUTs (steps 3 and 4 skipped).")
    parser.add_argument("--model", default="fake", help="'fake' (default) or a model name or path.")
    parser.add_argument("--reuse", type=Path, default=None,
                        help="Keep the corpus and index in this folder, built on the first run and reused (and "
                        "updated further) by later ones: build under load, time the PUTs on a quiet machine.")
    args = parser.parse_args()

    rng = random.Random(13)
    words = _vocabulary(rng)
    encoder: Encoder = (FastHashingEncoder(dimension=384, max_seq_length=256) if args.model == "fake"
                        else load_encoder(args.model))
    kept = contextlib.nullcontext(str(args.reuse)) if args.reuse else tempfile.TemporaryDirectory()
    with kept as tmp:
        root = Path(tmp)
        corpus = root / "corpus"
        documents = max(1, args.chunks // SECTIONS)
        if not corpus.is_dir():
            _write_corpus(corpus, documents, rng, words)
        settings = Settings(
            corpus_dir=corpus, index_dir=root / "indexes" / "default", state_dir=root / "state",
            backends=args.backends.split(","), admin_api_key=SecretStr(KEY), watch_index=False, drift_log=False,
            update_coalesce_s=0.05, keep_versions=2,
        )
        if (root / "indexes" / "default").exists():
            print(f"index        reused from {root} (backends {args.backends}, model {encoder.name})")
        else:
            started = time.perf_counter()
            built = build_index(build_config(settings), encoder)
            documents = documents
            print(f"index        {built.chunks} chunks, {documents} documents, backends {args.backends}, "
                  f"model {encoder.name} ({encoder.dimension}d); built in {time.perf_counter() - started:.1f}s")

        app = create_app(settings, searcher_factory(lambda name: encoder), static_dir=None)
        with TestClient(app) as client:
            while client.get("/ready").status_code != 200:
                time.sleep(0.05)
            # 1. one PUT until searchable: a new document in the middle of the index, then an edit
            middle = f"doc{documents // 2:06d}-new" + (f"-{int(time.time())}" if args.reuse else "")
            _one_put(client, app, middle, _document(rng, words, "Fresh document"), f"new document {middle}")
            edited = f"doc{documents // 3:06d}"
            _one_put(client, app, edited, _document(rng, words, "Edited document"), f"edit of {edited}")

            if args.writes <= 0:
                return
            # 2. concurrent writes and deletes while searches run
            stop = threading.Event()
            searches = failures = 0
            statuses_seen: dict[int, int] = {}
            lock = threading.Lock()
            methods = sorted({method for method, _ in _plans(settings.backends)})

            def search_loop(seed: int) -> None:
                nonlocal searches, failures
                local = random.Random(seed)
                while not stop.is_set():
                    method, backend = local.choice(_plans(settings.backends))
                    body = {"query": " ".join(local.choices(words, k=4)), "k": 10, "method": method, "backend": backend}
                    status = client.post("/search", json=body).status_code
                    with lock:
                        searches += 1
                        failures += status != 200
                        statuses_seen[status] = statuses_seen.get(status, 0) + 1

            def write(i: int) -> int:
                local = random.Random(1000 + i)
                if i % 3 == 2:
                    return client.delete(f"/documents/doc{local.randrange(documents):06d}",
                                         headers=HEADERS).status_code
                doc_id = f"new{i:03d}" if i % 3 == 0 else f"doc{local.randrange(documents):06d}"
                return client.put(f"/documents/{doc_id}", json={"text": _document(local, words, doc_id)},
                                  headers=HEADERS).status_code

            searchers = [threading.Thread(target=search_loop, args=(s,)) for s in range(2)]
            for thread in searchers:
                thread.start()
            started = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(write, range(args.writes)))
            state = app.state.documents
            last = state.store.last_seq
            while client.get("/index").json()["manifest"]["corpus"].get("document_seq", 0) < last:
                time.sleep(0.05)
            settled = time.perf_counter() - started
            refitted = _wait_for_refit(client, started)
            stop.set()
            for thread in searchers:
                thread.join()
            versions = client.get("/index").json()["reloads"]
        accepted = sum(s == 202 for s in statuses)
        missing = sum(s == 404 for s in statuses)
        print(f"{args.writes} writes  {accepted} accepted (202), {missing} deletes of already deleted ids (404), "
              f"other {len(statuses) - accepted - missing}; all served after {settled:.1f} s "
              f"and refitted after {refitted:.1f} s, in {versions - 1} published versions (updates and refits)")
        print(f"searches     {searches} during the writes ({', '.join(methods)}), {failures} failed; "
              f"statuses {statuses_seen}")

        # 3. equal to a clean rebuild of the final corpus
        clean = replace(build_config(settings), index_dir=root / "clean" / "default")
        build_index(clean, encoder)
        a = ChunkStore(current_version_dir(settings.index_dir) / ChunkStore.FILE)
        b = ChunkStore(current_version_dir(clean.index_dir) / ChunkStore.FILE)
        same_ids = [c.id for c in a] == [c.id for c in b]
        same_vectors = bool(np.allclose(a.embeddings(), b.embeddings(), atol=1e-6))
        queries = [" ".join(rng.choices(words, k=4)) for _ in range(20)]
        same_results = _results(settings.index_dir, settings, encoder, queries) == \
            _results(clean.index_dir, settings, encoder, queries)
        plans = ", ".join(f"{method}/{backend}" for method, backend in _plans(settings.backends))
        print(f"rebuild      {len(a)} chunks; same chunk ids: {same_ids}, same vectors: {same_vectors}, "
              f"same results (20 queries x {plans}): {same_results}")


if __name__ == "__main__":
    main()
