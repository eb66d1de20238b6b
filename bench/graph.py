"""Neighbour-graph benchmark: what the chunks' graph for BM25 smoothing costs a build and an update, and how near
the approximate graph comes to the exact one, as the index grows.

Run: ``.venv/bin/python -m bench.graph --sizes 20000,100000,1000000 [--encoder fake|real] [--sample 2000]
[--update-docs 10] [--exact-limit N] [--vectors-cache DIR] [--json OUT]``

For each size, in a fresh process (so that its peak RSS is its own): the synthetic corpus of ``bench.scale``
(sections of sentences resampled from ``corpus/`` and Cranfield) embedded with its fast fake encoder (a
hashed bag of words projected: far less clustered than a real model's vectors, so the hard case for an inverted
file) or, with ``--encoder real``, the bundled model as the service runs it; then

1. **build**: :func:`indexing.neighbours.compute_graph` as a build calls it (exact up to ``EXACT_LIMIT``, the
   inverted file past it), timed, saved, and loaded back as a searcher reads it;
2. **quality**: recall@3 (the neighbours smoothing reads) and recall@10 of ``--sample`` random chunks' lists
   against their exact neighbours, and the found three's mean similarity as a share of the exact three's;
3. **update**: ``--update-docs`` documents replaced by new ones (their chunks deleted, as many fresh ones
   inserted at their place) and the graph spliced (:func:`indexing.neighbours.splice_graph`), timed, with the
   spliced rows' recall against the exact graph of the new vectors.

It prints one table and writes ``{"sizes": [{"chunks", "method", "build_s", ...}]}`` with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.scale import SECTIONS_PER_DOC, HashedProjectionEncoder, peak_rss_mb, sentence_pool, synthetic_documents
from indexing.backends.base import Piece
from indexing.neighbours import EXACT_LIMIT, NeighbourGraph, compute_graph, exact_rows, splice_graph
from mlsearch.configs import DEFAULT_SMOOTHING

SMOOTHED = DEFAULT_SMOOTHING.neighbours
"""Neighbours that smoothing reads by default (``MLSEARCH_SMOOTHING_NEIGHBOURS``)."""


def _encoder(kind: str) -> Any:
    if kind == "fake":
        return HashedProjectionEncoder()
    from indexing.embedding import open_encoder

    return open_encoder("all-MiniLM-L6-v2")  # the service's default encoder (OpenVINO int8)


def _vectors(size: int, seed: int, encoder: Any) -> np.ndarray:
    texts = [f"{title}. {section}" for title, sections in synthetic_documents(size, sentence_pool(), seed)
             for section in sections]
    return np.vstack([np.asarray(encoder.encode(texts[s:s + 20_000], batch_size=64), np.float32)
                      for s in range(0, len(texts), 20_000)])


def _recall(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth, strict=True)]))


def _similarity_share(vectors: np.ndarray, rows: np.ndarray, found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """The found neighbours' mean similarity as a share of the true neighbours' (1: as near as the exact ones)."""
    near = np.sum(vectors[rows][:, None, :] * vectors[found[:, :k]], axis=2).mean()
    best = np.sum(vectors[rows][:, None, :] * vectors[truth[:, :k]], axis=2).mean()
    return float(near / best)


def _cached_vectors(size: int, seed: int, encoder: Any, kind: str, cache: Path | None) -> np.ndarray:
    """The corpus's vectors, read from ``cache`` when an earlier run saved them there (the real model takes
    minutes per 10,000 chunks on 2 cores)."""
    path = None if cache is None else cache / f"{kind}-{size}-{seed}.npy"
    if path is not None and path.is_file():
        return np.load(path)
    vectors = _vectors(size, seed, encoder)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors


def measure(
    size: int, sample: int, update_docs: int, seed: int, kind: str = "fake", exact_limit: int = EXACT_LIMIT,
    cache: Path | None = None,
) -> dict[str, Any]:
    """Every figure for one size (run in a child process)."""
    encoder = _encoder(kind)
    started = time.perf_counter()
    vectors = _cached_vectors(size, seed, encoder, kind, cache)
    embed_s = time.perf_counter() - started
    rss_before = peak_rss_mb()
    graph = compute_graph(vectors, exact_limit=exact_limit)
    build_rss = peak_rss_mb()
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vectors), min(sample, len(vectors)), replace=False)
    truth, _ = exact_rows(vectors, rows, graph.k)
    with tempfile.TemporaryDirectory() as folder:
        graph.save(Path(folder))
        disk = sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 2**20
        loading = time.perf_counter()
        loaded = NeighbourGraph.load(Path(folder))
        load_s = time.perf_counter() - loading
    assert loaded is not None
    # an update: `update_docs` documents evenly spread replaced by as many fresh chunks, their place kept
    doc_starts = np.linspace(0, len(vectors) // SECTIONS_PER_DOC - 1, update_docs).astype(int) * SECTIONS_PER_DOC
    fresh = _cached_vectors(update_docs * SECTIONS_PER_DOC, seed + 1, encoder, kind, cache)
    new = vectors.copy()
    pieces: list[Piece] = []
    kept_from = 0
    for d, start in enumerate(doc_starts):
        new[start:start + SECTIONS_PER_DOC] = fresh[d * SECTIONS_PER_DOC:(d + 1) * SECTIONS_PER_DOC]
        pieces += [Piece(int(start - kept_from), kept_from), Piece(SECTIONS_PER_DOC, None)]
        kept_from = int(start) + SECTIONS_PER_DOC
    pieces.append(Piece(len(vectors) - kept_from, kept_from))
    pieces = [p for p in pieces if p.count]
    splicing = time.perf_counter()
    spliced = splice_graph(graph, pieces, new)
    splice_s = time.perf_counter() - splicing
    changed = np.concatenate([np.arange(s, s + SECTIONS_PER_DOC) for s in doc_starts])
    check = np.concatenate([changed[:sample // 2], rng.choice(len(new), sample // 2, replace=False)])
    spliced_truth, _ = exact_rows(new, check, graph.k)
    return {
        "chunks": len(vectors), "encoder": kind, "method": graph.method, "embed_s": round(embed_s, 1),
        "build_s": round(graph.seconds, 2), "build_peak_rss_mb": round(build_rss, 1),
        "vectors_mb": round(vectors.nbytes / 2**20, 1), "rss_before_mb": round(rss_before, 1),
        "recall_at_3": round(_recall(graph.ids[rows], truth, SMOOTHED), 4),
        "recall_at_10": round(_recall(graph.ids[rows], truth, graph.k), 4),
        "similarity_share_at_3": round(_similarity_share(vectors, rows, graph.ids[rows], truth, SMOOTHED), 4),
        "disk_mb": round(disk, 1), "load_s": round(load_s, 3),
        "update_chunks": int(len(changed)), "splice_s": round(splice_s, 3),
        "spliced_recall_at_3": round(_recall(spliced.ids[check], spliced_truth, SMOOTHED), 4),
    }


def _run(args: argparse.Namespace, size: int, queue: Any) -> None:
    queue.put(measure(size, args.sample, args.update_docs, args.seed, args.encoder, args.exact_limit,
                      args.vectors_cache))


def main() -> None:
    """Measure every size and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--sample", type=int, default=2000, help="Chunks whose lists are checked against exact.")
    parser.add_argument("--update-docs", type=int, default=10, help="Documents an update replaces.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoder", choices=["fake", "real"], default="fake",
                        help="bench.scale's fast hashed encoder, or the bundled model as the service runs it.")
    parser.add_argument("--exact-limit", type=int, default=EXACT_LIMIT,
                        help="Largest size computed exactly (lower it to measure the inverted file on small sizes).")
    parser.add_argument("--vectors-cache", type=Path, help="Save the embedded corpus here and reuse it next time.")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    context = multiprocessing.get_context("spawn")
    for size in (int(s) for s in args.sizes.split(",")):
        queue = context.Queue()
        child = context.Process(target=_run, args=(args, size, queue))
        child.start()
        result = queue.get()
        child.join()
        results.append(result)
        print(json.dumps(result), flush=True)
    columns = ["chunks", "encoder", "method", "build_s", "build_peak_rss_mb", "vectors_mb", "recall_at_3",
               "recall_at_10", "similarity_share_at_3",
               "disk_mb", "load_s", "update_chunks", "splice_s", "spliced_recall_at_3"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for result in results:
        print("| " + " | ".join(str(result[c]) for c in columns) + " |")
    if args.json:
        args.json.write_text(json.dumps({"sizes": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
