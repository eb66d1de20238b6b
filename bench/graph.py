"""Neighbour-graph benchmark: what the chunks' graph for BM25 smoothing costs a build and an update, and how near
the approximate graph comes to the exact one, as the index grows.

Run: ``.venv/bin/python -m bench.graph --sizes 20000,100000,1000000 [--sample 2000] [--update-docs 10] [--json OUT]``

For each size, in a fresh process (so that its peak RSS is its own): the synthetic corpus of ``bench.scale``
(sections of sentences resampled from ``corpus/`` and Cranfield) embedded with its fast fake encoder, then

1. **build**: :func:`indexing.neighbours.compute_graph` as a build calls it (exact up to ``EXACT_LIMIT``, the
   inverted file past it), timed, saved, and loaded back as a searcher reads it;
2. **quality**: recall@3 (the neighbours smoothing reads) and recall@10 of ``--sample`` random chunks' lists
   against their exact neighbours;
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
from indexing.neighbours import NeighbourGraph, compute_graph, exact_rows, splice_graph

SMOOTHED = 3
"""Neighbours that smoothing reads by default (``MLSEARCH_SMOOTHING_NEIGHBOURS``)."""


def _vectors(size: int, seed: int) -> np.ndarray:
    encoder = HashedProjectionEncoder()
    texts = [f"{title}. {section}" for title, sections in synthetic_documents(size, sentence_pool(), seed)
             for section in sections]
    return np.vstack([encoder.encode(texts[s:s + 20_000]) for s in range(0, len(texts), 20_000)])


def _recall(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth, strict=True)]))


def measure(size: int, sample: int, update_docs: int, seed: int) -> dict[str, Any]:
    """Every figure for one size (run in a child process)."""
    started = time.perf_counter()
    vectors = _vectors(size, seed)
    embed_s = time.perf_counter() - started
    rss_before = peak_rss_mb()
    graph = compute_graph(vectors)
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
    fresh = _vectors(update_docs * SECTIONS_PER_DOC, seed + 1)
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
        "chunks": len(vectors), "method": graph.method, "embed_s": round(embed_s, 1),
        "build_s": round(graph.seconds, 2), "build_peak_rss_mb": round(build_rss, 1),
        "vectors_mb": round(vectors.nbytes / 2**20, 1), "rss_before_mb": round(rss_before, 1),
        "recall_at_3": round(_recall(graph.ids[rows], truth, SMOOTHED), 4),
        "recall_at_10": round(_recall(graph.ids[rows], truth, graph.k), 4),
        "disk_mb": round(disk, 1), "load_s": round(load_s, 3),
        "update_chunks": int(len(changed)), "splice_s": round(splice_s, 3),
        "spliced_recall_at_3": round(_recall(spliced.ids[check], spliced_truth, SMOOTHED), 4),
    }


def _run(size: int, sample: int, update_docs: int, seed: int, queue: Any) -> None:
    queue.put(measure(size, sample, update_docs, seed))


def main() -> None:
    """Measure every size and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--sample", type=int, default=2000, help="Chunks whose lists are checked against exact.")
    parser.add_argument("--update-docs", type=int, default=10, help="Documents an update replaces.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    context = multiprocessing.get_context("spawn")
    for size in (int(s) for s in args.sizes.split(",")):
        queue = context.Queue()
        child = context.Process(target=_run, args=(size, args.sample, args.update_docs, args.seed, queue))
        child.start()
        result = queue.get()
        child.join()
        results.append(result)
        print(json.dumps(result), flush=True)
    columns = ["chunks", "method", "build_s", "build_peak_rss_mb", "vectors_mb", "recall_at_3", "recall_at_10",
               "disk_mb", "load_s", "update_chunks", "splice_s", "spliced_recall_at_3"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for result in results:
        print("| " + " | ".join(str(result[c]) for c in columns) + " |")
    if args.json:
        args.json.write_text(json.dumps({"sizes": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
