"""Writers of tiny evaluation datasets for the tests."""

from __future__ import annotations

import json
from pathlib import Path

BEIR_CORPUS = [
    {"_id": "d1", "title": "Dropout", "text": "Dropout randomly zeroes activations during training of a network."},
    {"_id": "d2", "title": "Adam optimizer", "text": "Adam keeps running averages of gradients and squared gradients."},
    {"_id": "doc/3", "title": "Drift tests",
     "text": "The Kolmogorov-Smirnov test compares two samples.\n# not a heading\nPSI bins a reference sample."},
    {"_id": "d4", "title": "FAISS", "text": "FAISS searches dense vectors with flat, IVF and HNSW indexes."},
    {"_id": "d5", "title": "Empty text", "text": ""},
    {"_id": "d6", "title": "", "text": "Momentum accumulates a velocity vector for gradient descent."},
    {"_id": "d7", "title": "", "text": "  "},
]
BEIR_QUERIES = {
    "q1": "how does dropout zero activations",
    "q2": "running averages of squared gradients",
    "q3": "Kolmogorov-Smirnov test two samples",
    "q4": "velocity vector momentum",
    "q5": "a query without relevant judgement",
}
BEIR_QRELS = [("q1", "d1", 2), ("q2", "d2", 1), ("q2", "d6", 1), ("q3", "doc/3", 1), ("q4", "d6", 1),
              ("q5", "d1", 0)]


def write_beir(folder: Path, corpus: list[dict[str, object]] | None = None,
               queries: dict[str, str] | None = None, qrels: list[tuple[str, str, int]] | None = None) -> Path:
    """Write a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps(d) + "\n" for d in (BEIR_CORPUS if corpus is None else corpus))
    )
    write_queries(folder, BEIR_QUERIES if queries is None else queries)
    write_qrels(folder, BEIR_QRELS if qrels is None else qrels)
    return folder


def write_queries(folder: Path, queries: dict[str, str]) -> None:
    """Write ``queries.jsonl``."""
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items()))


def write_qrels(folder: Path, qrels: list[tuple[str, str, int]]) -> None:
    """Write ``qrels/test.tsv`` with its header."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in qrels)
    )
