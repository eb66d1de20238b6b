"""End to end with the real model on part of the shipped corpus: off-topic questions move the top score and the
distance to the reference centroid, and the service names both."""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.state import searcher_factory
from drift.reference import read_queries
from indexing.backends.configs import build_config
from indexing.build import build_index
from mlsearch.settings import Settings
from tests.conftest import CORPUS_DIR, ROOT
from tests.drift.test_api import OFF_TOPIC

BUILTIN = ROOT / "evaluation" / "builtin"
ARTICLES = 20


@pytest.mark.slow
def test_real_model_names_top_score_and_centroid_distance(real_encoder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    qrels = BUILTIN / "qrels" / "test.tsv"
    if not qrels.is_file() or not (BUILTIN / "queries.jsonl").is_file():
        pytest.skip("the built-in queries are not available")
    primary = {}
    for line in qrels.read_text().splitlines()[1:]:
        query_id, doc_id, score = line.split("\t")
        if score == "2":
            primary[query_id] = doc_id
    articles = [doc for doc, _ in Counter(primary.values()).most_common(ARTICLES)]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for doc in articles:
        shutil.copy(CORPUS_DIR / f"{doc}.md", corpus / f"{doc}.md")
    texts = {}
    for line in (BUILTIN / "queries.jsonl").read_text().splitlines():
        record = json.loads(line)
        texts[record["_id"]] = record["text"]
    in_domain = [texts[q] for q in texts if primary.get(q) in articles]
    assert len(in_domain) >= 30

    settings = Settings(index_dir=tmp_path / "index", corpus_dir=corpus, state_dir=tmp_path / "state",
                        watch_index=False, drift_reference_size=20, drift_window=20, drift_min_window=10)
    build_index(build_config(settings), real_encoder, backends=["faiss", "bm25"])
    app = create_app(settings, searcher_factory(lambda name: real_encoder), static_dir=None)
    with TestClient(app) as client:
        deadline = time.monotonic() + 60
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for query in in_domain[:30]:
            assert client.post("/search", json={"query": query, "k": 5}).status_code == 200
        body = client.get("/drift").json()
        assert body["status"] == "ok", body["reasons"]
        for query in read_queries(BUILTIN / "offtopic_queries.txt")[:15] + OFF_TOPIC[:15]:
            assert client.post("/search", json={"query": query, "k": 5}).status_code == 200
        body = client.get("/drift").json()
    assert body["status"] == "drift"
    moved = {reason.split(":")[0] for reason in body["reasons"]}
    assert {"top_score", "centroid_distance"} <= moved
    assert body["features"]["top_score"]["window_mean"] < body["features"]["top_score"]["reference_mean"] - 0.15
