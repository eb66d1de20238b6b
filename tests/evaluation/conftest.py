"""Tiny evaluation datasets written in the test's folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.evaluation.builders import write_beir, write_qrels, write_queries


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    """A six-document BEIR dataset: one id with a slash, one empty text, one empty title."""
    return write_beir(tmp_path / "tinybeir")


@pytest.fixture
def qrels_dir(tmp_path: Path) -> Path:
    """Queries and qrels that judge the shared ``tiny_corpus`` folder by document id."""
    folder = tmp_path / "tinyqrels"
    folder.mkdir()
    write_queries(folder, {
        "q1": "what does dropout do during training",
        "q2": "Adam running averages of gradients",
        "q3": "Kolmogorov-Smirnov test and population stability index",
        "q4": "similarity search library for dense vectors",
    })
    write_qrels(folder, [("q1", "dropout", 1), ("q2", "optimizers", 1), ("q3", "drift", 2), ("q4", "faiss", 1)])
    return folder


@pytest.fixture
def span_file(tmp_path: Path) -> Path:
    """Answer-span questions about the ``tiny_corpus`` (one whose evidence is nowhere)."""
    path = tmp_path / "spans.tsv"
    path.write_text(
        "id\tquery\tevidence\n"
        "s1\twhat rate of dropout for inputs\t0.2 for inputs\n"
        "s2\twhat does momentum accumulate\tMomentum accumulates a VELOCITY vector\n"
        "s3\twhich indexes does faiss have\tflat, IVF and HNSW indexes\n"
        "s4\tsomething absent\tthis sentence is in no document\n"
    )
    return path
