"""Document-write benchmark: one PUT into a big index until searchable, then concurrent writes under search load.

Run: ``.venv/bin/python -m bench.documents [--chunks 50000] [--backends faiss,bm25] [--model fake|NAME]``

1. Builds an index of about ``--chunks`` chunks from synthetic Markdown documents (ten sections each, one chunk
   per section) with a fast deterministic fake encoder (384 dimensions; ``--model all-MiniLM-L6-v2`` for the
   real one, far slower to build).
2. Starts the service in-process (FastAPI TestClient), sends one ``PUT /documents/{id}`` and polls ``/search``
   until the new document is found: the time from the PUT to the first search that finds it, and how many chunks
   the update embedded.
3. Sends ``--writes`` PUTs and DELETEs from 8 threads while 2 threads search without pause, waits until every
   write is served, and counts failed searches.
4. Rebuilds the final corpus from scratch into another directory and compares chunk ids, vectors and the
   results of 20 queries with the incrementally updated index.
"""

from __future__ import annotations

import argparse
import functools
import random
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.state import searcher_factory
from indexing.build import build_index
from indexing.embedding import Encoder, load_encoder
from indexing.layout import current_version_dir
from indexing.store import ChunkStore
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


def _results(index_dir: Path, settings: Settings, encoder: Encoder, queries: Sequence[str]) -> list[object]:
    searcher = Searcher.open(index_dir, settings, encoder=encoder)
    out: list[object] = []
    for query in queries:
        for method in ("dense", "bm25", "hybrid") if "bm25" in settings.backends else ("dense",):
            hits = searcher.search(query, k=10, method=method).hits
            out.append([(h.id, round(h.score, 4)) for h in hits])
    searcher.close()
    return out


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=50_000)
    parser.add_argument("--backends", default="faiss,bm25")
    parser.add_argument("--writes", type=int, default=100)
    parser.add_argument("--model", default="fake", help="'fake' (default) or a model name or path.")
    args = parser.parse_args()

    rng = random.Random(13)
    words = _vocabulary(rng)
    encoder: Encoder = (FastHashingEncoder(dimension=384, max_seq_length=256) if args.model == "fake"
                        else load_encoder(args.model))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        corpus = root / "corpus"
        _write_corpus(corpus, max(1, args.chunks // SECTIONS), rng, words)
        settings = Settings(
            corpus_dir=corpus, index_dir=root / "indexes" / "default", state_dir=root / "state",
            backends=args.backends.split(","), admin_api_key=SecretStr(KEY), watch_index=False, drift_log=False,
            update_coalesce_s=0.05, keep_versions=2,
        )
        started = time.perf_counter()
        built = build_index(settings, encoder)
        print(f"index        {built.chunks} chunks, {built.documents} documents, backends {args.backends}, "
              f"model {encoder.name} ({encoder.dimension}d); built in {time.perf_counter() - started:.1f}s")

        app = create_app(settings, searcher_factory(lambda name: encoder), static_dir=None)
        with TestClient(app) as client:
            while client.get("/ready").status_code != 200:
                time.sleep(0.05)
            # 1. one PUT until searchable
            text = _document(rng, words, "Fresh document")
            query = text.split("\n\n")[2][:200]
            encoded = getattr(encoder, "encoded_texts", None)
            started = time.perf_counter()
            answer = client.put("/documents/fresh", json={"text": text}, headers=HEADERS)
            assert answer.status_code == 202, answer.text
            acknowledged = time.perf_counter() - started
            while True:
                hits = client.post("/search", json={"query": query, "k": 5}).json()["results"]
                if any(h["doc_id"] == "fresh" for h in hits):
                    break
                time.sleep(0.1)
            searchable = time.perf_counter() - started
            served = client.get("/index").json()
            embedded = served["counts"]["embedded"]
            update_s = served["manifest"]["build_seconds"]
            counted = "" if encoded is None else f" (encoder calls: {encoder.encoded_texts - encoded} texts)"
            print(f"one PUT      acknowledged in {acknowledged * 1000:.0f} ms, searchable after {searchable:.2f} s "
                  f"(version {served['version']}, its update took {update_s:.2f} s); "
                  f"re-embedded {embedded} chunks{counted}, "
                  f"reused {served['counts']['reused']}")

            # 2. concurrent writes and deletes while searches run
            stop = threading.Event()
            searches = failures = 0
            statuses_seen: dict[int, int] = {}
            lock = threading.Lock()
            methods = ["dense", "bm25", "hybrid"] if "bm25" in settings.backends else ["dense"]

            def search_loop(seed: int) -> None:
                nonlocal searches, failures
                local = random.Random(seed)
                while not stop.is_set():
                    body = {"query": " ".join(local.choices(words, k=4)), "k": 10, "method": local.choice(methods)}
                    status = client.post("/search", json=body).status_code
                    with lock:
                        searches += 1
                        failures += status != 200
                        statuses_seen[status] = statuses_seen.get(status, 0) + 1

            def write(i: int) -> int:
                local = random.Random(1000 + i)
                if i % 3 == 2:
                    return client.delete(f"/documents/doc{local.randrange(built.documents):06d}",
                                         headers=HEADERS).status_code
                doc_id = f"new{i:03d}" if i % 3 == 0 else f"doc{local.randrange(built.documents):06d}"
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
            stop.set()
            for thread in searchers:
                thread.join()
            versions = client.get("/index").json()["reloads"]
        accepted = sum(s == 202 for s in statuses)
        missing = sum(s == 404 for s in statuses)
        print(f"{args.writes} writes  {accepted} accepted (202), {missing} deletes of already deleted ids (404), "
              f"other {len(statuses) - accepted - missing}; all served after {settled:.1f} s "
              f"in {versions - 1} coalesced updates")
        print(f"searches     {searches} during the writes ({', '.join(methods)}), {failures} failed; "
              f"statuses {statuses_seen}")

        # 3. equal to a clean rebuild of the final corpus
        clean = settings.model_copy(update={"index_dir": root / "clean" / "default"})
        build_index(clean, encoder)
        a = ChunkStore(current_version_dir(settings.index_dir) / ChunkStore.FILE)
        b = ChunkStore(current_version_dir(clean.index_dir) / ChunkStore.FILE)
        same_ids = [c.id for c in a] == [c.id for c in b]
        same_vectors = bool(np.allclose(a.embeddings(), b.embeddings(), atol=1e-6))
        queries = [" ".join(rng.choices(words, k=4)) for _ in range(20)]
        same_results = _results(settings.index_dir, settings, encoder, queries) == \
            _results(clean.index_dir, clean, encoder, queries)
        print(f"rebuild      {len(a)} chunks; same chunk ids: {same_ids}, same vectors: {same_vectors}, "
              f"same results (20 queries x {', '.join(methods)}): {same_results}")


if __name__ == "__main__":
    main()
