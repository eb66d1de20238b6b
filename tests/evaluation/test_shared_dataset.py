"""A real BEIR dataset from ../shared/datasets: the whole pipeline, and BM25 near its published figure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.datasets import load_dataset
from evaluation.indexes import needed_backends, prepare_index
from evaluation.report import write_report
from evaluation.runner import evaluate
from indexing.backends.configs import build_config, search_config
from mlsearch.settings import Settings
from search.searcher import Searcher
from tests.conftest import shared_path
from tests.fakes import HashingEncoder


@pytest.mark.slow
def test_cranfield_end_to_end(tmp_path: Path) -> None:
    folder = shared_path("datasets", "cranfield")
    dataset = load_dataset(folder)
    assert dataset.kind == "beir" and len(dataset.queries) == 225
    settings = Settings(index_dir=tmp_path / "indexes" / "default", lsi_dimensions=100)
    encoder = HashingEncoder()  # the lexical methods do not depend on the model; keeps the test minutes shorter
    methods = ["bm25", "lsi", "dense", "hybrid"]
    prepared = prepare_index(dataset, build_config(settings), encoder, needed_backends(methods, "faiss"),
                             tmp_path / "cache")
    assert prepared.id_map is not None and len(prepared.id_map) == 1400
    searcher = Searcher.open(prepared.index_dir, search_config(settings), encoder=encoder)
    assert searcher.manifest.counts["documents"] == 1398  # two documents have neither title nor text
    result = evaluate(searcher, dataset, methods, k=100, id_map=prepared.id_map)
    table = result.metrics_table()
    # The dataset's README: BM25 over whole documents, nDCG@10 = 0.336 (linear gain).
    assert 0.30 <= table["bm25"]["ndcg@10"] <= 0.45, table["bm25"]
    assert table["lsi"]["ndcg@10"] > 0.2 and table["bm25"]["recall@100"] > 0.6
    paths = write_report(result, tmp_path / "report")
    assert json.loads(paths["metrics"].read_text()) == table
    assert len((paths["runs"] / "bm25.trec").read_text().splitlines()) == 225 * 100
