"""``POST /search`` and ``POST /compare`` over the tiny index."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.state import searcher_factory
from indexing.backends.configs import build_config
from indexing.build import build_index
from mlsearch.errors import BackendUnavailableError
from mlsearch.settings import Settings
from search.searcher import Searcher
from tests.api.conftest import service_state, wait_ready
from tests.fakes import HashingEncoder

HIT_FIELDS = {"rank", "id", "doc_id", "title", "heading", "text", "snippet", "score", "source_type", "path", "url",
              "page", "cell", "other_matches"}


@pytest.mark.parametrize("method", ["dense", "lsi", "bm25", "hybrid"])
@pytest.mark.parametrize("backend", ["faiss", "annoy"])
def test_search_answers_every_method_and_backend(client: TestClient, method: str, backend: str) -> None:
    response = client.post("/search", json={"query": "dropout rate for hidden layers", "k": 3,
                                            "method": method, "backend": backend})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["query"] == "dropout rate for hidden layers"
    assert body["method"] == method
    assert body["backend"] == (backend if method in ("dense", "hybrid") else method)
    assert body["took_ms"] >= 0 and body["index_version"]
    assert 1 <= len(body["results"]) <= 3
    assert [hit["rank"] for hit in body["results"]] == list(range(1, len(body["results"]) + 1))
    assert set(body["results"][0]) == HIT_FIELDS
    assert body["results"][0]["doc_id"] == "dropout"


def test_search_defaults_to_dense_faiss_top_10(client: TestClient) -> None:
    body = client.post("/search", json={"query": "optimizer momentum"}).json()
    assert (body["method"], body["backend"]) == ("dense", "faiss")
    total = client.get("/index").json()["counts"]["chunks"]
    assert len(body["results"]) == min(10, total)
    scores = [hit["score"] for hit in body["results"]]
    assert scores == sorted(scores, reverse=True)


def test_snippet_shows_the_passage_around_the_query_terms(client: TestClient) -> None:
    hit = client.post("/search", json={"query": "population stability index", "method": "bm25", "k": 1}).json()[
        "results"][0]
    assert hit["doc_id"] == "drift"
    assert "population stability index" in hit["snippet"].lower()
    assert len(hit["snippet"]) <= len(" ".join(hit["text"].split())) + 2


@pytest.mark.parametrize("method", ["dense", "lsi", "bm25", "hybrid"])
def test_tag_filter_keeps_only_chunks_with_the_tags(client: TestClient, method: str) -> None:
    body = client.post("/search", json={"query": "dropout sample training", "k": 10, "method": method,
                                        "filters": {"tags": ["drift"]}}).json()
    assert body["results"], body
    assert {hit["doc_id"] for hit in body["results"]} == {"drift"}
    several = client.post("/search", json={"query": "dropout sample training", "k": 10, "method": method,
                                           "filters": {"tags": ["drift", "deep-learning"]}}).json()
    assert {hit["doc_id"] for hit in several["results"]} == {"drift", "dropout"}


def test_unknown_tag_gives_no_results_and_no_error(client: TestClient) -> None:
    response = client.post("/search", json={"query": "dropout", "filters": {"tags": ["no-such-tag"]}})
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_elasticsearch_not_configured_is_503_naming_it_while_others_answer(client: TestClient) -> None:
    response = client.post("/search", json={"query": "dropout", "backend": "elasticsearch"})
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "backend_unavailable" and body["backend"] == "elasticsearch"
    assert "elasticsearch" in body["detail"]
    for backend in ("faiss", "annoy"):
        assert client.post("/search", json={"query": "dropout", "backend": backend}).status_code == 200
    hybrid = client.post("/search", json={"query": "dropout", "method": "hybrid", "backend": "elasticsearch"})
    assert hybrid.status_code == 503 and hybrid.json()["backend"] == "elasticsearch"


def test_backend_missing_from_the_index_is_503_naming_it(
    tiny_corpus: Path, api_settings: Settings, fake_encoder: HashingEncoder, make_app: Callable[..., FastAPI]
) -> None:
    build_index(build_config(api_settings), fake_encoder, corpus_dir=tiny_corpus, backends=["faiss", "lsi"])
    with TestClient(make_app(api_settings)) as client:
        wait_ready(client)
        for body, missing in (
            ({"backend": "annoy"}, "annoy"), ({"method": "bm25"}, "bm25"), ({"method": "hybrid"}, "bm25"),
        ):
            response = client.post("/search", json={"query": "dropout", **body})
            assert response.status_code == 503, response.text
            assert response.json()["backend"] == missing
            assert "not built" in response.json()["detail"]
        assert client.post("/search", json={"query": "dropout", "method": "lsi"}).status_code == 200
        compare = client.post("/compare", json={"query": "dropout", "methods": ["lsi", "bm25"]})
        assert compare.status_code == 503 and compare.json()["backend"] == "bm25"


def test_a_backend_that_goes_down_is_503_while_others_answer(client: TestClient, app: FastAPI) -> None:
    searcher = service_state(app).require_searcher()
    load = searcher.backend

    def backend(name: str) -> object:
        if name == "annoy":
            raise BackendUnavailableError("annoy", "its server is down")
        return load(name)

    searcher.backend = backend  # type: ignore[method-assign]
    response = client.post("/search", json={"query": "dropout", "backend": "annoy"})
    assert response.status_code == 503
    assert response.json() == {"error": "backend_unavailable", "backend": "annoy",
                               "detail": "backend 'annoy' is unavailable: its server is down",
                               "request_id": response.headers["X-Request-ID"]}
    assert client.post("/search", json={"query": "dropout", "backend": "faiss"}).status_code == 200


def test_encoding_runs_off_the_event_loop(
    built_index: Path, api_settings: Settings, fake_encoder: HashingEncoder
) -> None:
    calls: list[bool] = []

    class RecordingEncoder(HashingEncoder):
        def encode(self, texts, batch_size=32, show_progress=False):  # type: ignore[no-untyped-def]
            try:
                asyncio.get_running_loop()
                calls.append(True)
            except RuntimeError:
                calls.append(False)
            return super().encode(texts, batch_size, show_progress)

    encoder = RecordingEncoder()
    from api.app import create_app

    with TestClient(create_app(api_settings, searcher_factory(lambda name: encoder))) as client:
        wait_ready(client)
        for method in ("dense", "hybrid"):
            assert client.post("/search", json={"query": f"adam {method}", "method": method}).status_code == 200
        assert client.post("/compare", json={"query": "sgd", "methods": ["dense", "lsi"]}).status_code == 200
    assert len(calls) >= 4  # the warm-up and three queries
    assert not any(calls), "encode ran on the event loop thread"


def test_query_embeddings_are_cached(client: TestClient, app: FastAPI) -> None:
    searcher: Searcher = service_state(app).require_searcher()
    before = searcher.cache.misses
    for _ in range(3):
        client.post("/search", json={"query": "kolmogorov smirnov"})
    assert searcher.cache.misses == before + 1
    cache = client.get("/index").json()["cache"]
    assert cache["hits"] >= 2 and cache["entries"] >= 1


def test_compare_defaults_to_lsi_and_dense(client: TestClient) -> None:
    response = client.post("/compare", json={"query": "momentum for gradient descent", "k": 4})
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body["runs"]) == ["lsi", "dense"]
    assert set(body["overlap"]) >= {"jaccard_at_k", "shared_ids", "rank_changes"}
    ids = {m: [hit["id"] for hit in run["results"]] for m, run in body["runs"].items()}
    lsi, dense = set(ids["lsi"]), set(ids["dense"])
    assert body["overlap"]["jaccard_at_k"] == pytest.approx(len(lsi & dense) / len(lsi | dense), abs=1e-6)
    assert set(body["overlap"]["shared_ids"]) == lsi & dense
    for change in body["overlap"]["rank_changes"]:
        ranks = change["ranks"]
        assert ranks["lsi"] == ids["lsi"].index(change["id"]) + 1
        assert ranks["dense"] == ids["dense"].index(change["id"]) + 1
        assert change["change"] == ranks["dense"] - ranks["lsi"]
    assert body["overlap"]["only_in"]["lsi"] == [i for i in ids["lsi"] if i not in dense]


def test_compare_three_methods_with_a_filter(client: TestClient) -> None:
    body = client.post("/compare", json={"query": "adam learning rate", "k": 3,
                                         "methods": ["bm25", "dense", "hybrid"],
                                         "backend": "annoy", "filters": {"tags": ["training"]}}).json()
    assert list(body["runs"]) == ["bm25", "dense", "hybrid"]
    assert body["runs"]["dense"]["backend"] == "annoy"
    for run in body["runs"].values():
        assert {hit["doc_id"] for hit in run["results"]} <= {"optimizers", "dropout"}
    assert set(body["overlap"]["pairwise_jaccard"]) == {"bm25|dense", "bm25|hybrid", "dense|hybrid"}
    all_sets = [{hit["id"] for hit in run["results"]} for run in body["runs"].values()]
    assert set(body["overlap"]["shared_ids"]) == set.intersection(*all_sets)


def test_dense_search_matches_brute_force_over_the_store(client: TestClient, app: FastAPI) -> None:
    searcher = service_state(app).require_searcher()
    query = "similarity search over dense vectors"
    vectors = searcher.store.embeddings()
    scores = vectors @ searcher.encoder.encode([query])[0]
    expected = [searcher.store.get([int(p)])[int(p)].id for p in np.argsort(-scores)[:3]]
    body = client.post("/search", json={"query": query, "k": 3}).json()
    assert [hit["id"] for hit in body["results"]] == expected
