"""End to end through the search service: in-domain traffic is ``ok``, off-topic traffic is ``drift``.

The shipped corpus is indexed with the fake encoder (a bag-of-words model: off-topic questions share few
words with the corpus, so their top score falls and their unknown-term share rises, as with the real model).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.state import searcher_factory
from drift.reference import read_queries
from indexing.backends.configs import build_config
from indexing.build import build_index
from mlsearch.settings import Settings
from tests.conftest import CORPUS_DIR, ROOT
from tests.fakes import HashingEncoder

ADMIN_KEY = "drift-admin-key"
BUILTIN = ROOT / "evaluation" / "builtin"
OFF_TOPIC = [
    "how long should I rest a steak after grilling it", "what is the best way to caramelise onions",
    "how much salt goes into homemade pasta dough", "can I freeze cooked rice safely",
    "how do I make a sourdough starter from scratch", "what wine goes with roast chicken",
    "cheapest month to fly from London to Tokyo", "do I need a visa to visit Canada for a week",
    "best things to do in Lisbon on a rainy day", "how early should I get to the airport for a flight",
    "is the Paris metro safe at night", "what should I pack for a hiking trip in Iceland",
    "which train pass is best for touring Italy", "how do I get from the airport to downtown Chicago",
    "who won the football world cup in 2014", "how many players are on a rugby union team",
    "what is the offside rule in soccer", "how long is a marathon in miles",
    "how do I improve my tennis serve", "when does the baseball season start",
    "what muscles does swimming butterfly work", "how to wax cross country skis",
    "best running shoes for flat feet", "how is a cricket test match scored",
    "what temperature should a turkey reach when roasting", "how do I keep basil fresh in the kitchen",
    "where can I rent a car in Madrid", "how to choose a snorkel mask for kids",
    "what time do museums open in Vienna", "how many calories does cycling burn per hour",
]


@pytest.fixture(scope="module")
def shipped_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped corpus built with the fake encoder (FAISS and BM25)."""
    if not (BUILTIN / "queries.jsonl").is_file() or not any(CORPUS_DIR.glob("*.md")):
        pytest.skip("the shipped corpus and built-in queries are not available")
    index_dir = tmp_path_factory.mktemp("drift-e2e") / "index"
    settings = Settings(index_dir=index_dir, corpus_dir=CORPUS_DIR, chunk_target_tokens=120,
                        chunk_overlap_tokens=16)
    build_index(build_config(settings), HashingEncoder(), backends=["faiss", "bm25"])
    return index_dir


@pytest.fixture
def e2e_settings(shipped_index: Path, tmp_path: Path) -> Settings:
    return Settings(
        index_dir=shipped_index, state_dir=tmp_path / "state", watch_index=False,
        admin_api_key=SecretStr(ADMIN_KEY), chunk_target_tokens=120, chunk_overlap_tokens=16,
        drift_reference_size=30, drift_window=30, drift_min_window=15, drift_store_text="full",
    )


def make_app(settings: Settings) -> FastAPI:
    encoder = HashingEncoder()
    return create_app(settings, searcher_factory(lambda name: encoder), static_dir=None)


@pytest.fixture
def serve() -> Iterator[Callable[[Settings], TestClient]]:
    clients: list[TestClient] = []

    def start(settings: Settings) -> TestClient:
        client = TestClient(make_app(settings)).__enter__()
        clients.append(client)
        deadline = time.monotonic() + 30
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, "the index did not load"
            time.sleep(0.02)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def in_domain_queries() -> list[str]:
    queries = read_queries(BUILTIN / "queries.jsonl")
    extra = BUILTIN / "indomain_queries.txt"
    if extra.is_file():
        queries += read_queries(extra)
    random.Random(7).shuffle(queries)
    return queries


def ask(client: TestClient, queries: list[str]) -> None:
    methods = ["dense", "hybrid", "bm25", "dense"]
    for i, query in enumerate(queries):
        if i % 5 == 4:
            response = client.post("/compare", json={"query": query, "k": 5, "methods": ["dense", "bm25"]})
        else:
            response = client.post("/search", json={"query": query, "k": 5, "method": methods[i % 4]})
        assert response.status_code == 200, response.text


def test_in_domain_traffic_is_ok_and_off_topic_traffic_is_drift(e2e_settings: Settings, serve) -> None:  # type: ignore[no-untyped-def]
    client = serve(e2e_settings)
    body = client.get("/drift").json()
    assert body["status"] == "warming_up" and body["drift"] is False and "0 of 30" in body["reasons"][0]

    queries = in_domain_queries()
    ask(client, queries[:30])
    body = client.get("/drift").json()
    assert body["status"] == "warming_up" and body["reference_size"] == 30 and body["window_size"] == 0

    ask(client, queries[30:70])
    body = client.get("/drift").json()
    assert body["status"] == "ok", body["reasons"]
    assert body["drift"] is False and body["window_size"] == 30 and body["reasons"] == []
    top = body["features"]["top_score"]
    assert {"ks_p", "psi", "adwin_change", "reference_mean", "window_mean"} <= set(top)

    ask(client, OFF_TOPIC)
    body = client.get("/drift").json()
    assert body["status"] == "drift" and body["drift"] is True
    # the bag-of-words fake scores off-topic questions on their stop words, so here the words moved, not the
    # top score (the real model moves both: see test_real_model_names_top_score_and_centroid_distance)
    assert any(reason.startswith("unknown_share: ") for reason in body["reasons"])
    unknown = body["features"]["unknown_share"]
    assert unknown["level"] == "drift" and unknown["window_mean"] > unknown["reference_mean"]
    assert unknown["ks_p_adjusted"] < 0.01 and unknown["psi"] > 0.25 and unknown["cusum"] > unknown["cusum_threshold"]
    assert body["log"]["rows"] == 100 and body["log"]["failed"] == 0

    page = client.get("/drift/report")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text.count("data:image/png;base64,") == 3 and "drift" in page.text

    metrics = client.get("/metrics").text
    assert "mlsearch_drift_status 2.0" in metrics
    assert 'mlsearch_drift_psi{feature="top_score"}' in metrics
    assert 'mlsearch_drift_ks_p{feature="unknown_share"}' in metrics
    assert 'mlsearch_drift_state{status="drift"} 1.0' in metrics


def test_reset_needs_the_admin_key_and_the_reference_survives_a_restart(e2e_settings: Settings, serve) -> None:  # type: ignore[no-untyped-def]
    client = serve(e2e_settings)
    ask(client, in_domain_queries()[:40])
    assert client.get("/drift").json()["reference_size"] == 30
    assert client.post("/admin/drift/reset").status_code == 401
    assert client.post("/admin/drift/reset", headers={"X-API-Key": "wrong"}).status_code == 403
    client.__exit__(None, None, None)

    restarted = serve(e2e_settings)
    body = restarted.get("/drift").json()
    assert body["reference_size"] == 30 and body["window_size"] == 10  # reference and window survived
    reset = restarted.post("/admin/drift/reset", headers={"X-API-Key": ADMIN_KEY})
    assert reset.status_code == 200 and reset.json()["status"] == "warming_up"
    assert "0 of 30" in restarted.get("/drift").json()["reasons"][0]


def test_a_reference_file_is_used_from_the_start(e2e_settings: Settings, serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    reference = tmp_path / "reference.txt"
    reference.write_text("\n".join(in_domain_queries()[:40]) + "\n")
    client = serve(e2e_settings.model_copy(update={"drift_reference_file": reference}))
    ask(client, in_domain_queries()[40:60])
    body = client.get("/drift").json()
    assert body["reference_size"] == 40 and body["window_size"] == 20 and body["status"] == "ok"
    assert body["reference"]["source"] == f"file:{reference}"


def test_search_keeps_working_when_the_drift_log_cannot_be_written(e2e_settings: Settings, serve,  # type: ignore[no-untyped-def]
                                                                   tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("x")
    client = serve(e2e_settings.model_copy(update={"state_dir": tmp_path / "not-a-dir" / "state"}))
    assert client.post("/search", json={"query": "what is dropout"}).status_code == 200
    response = client.get("/drift")
    assert response.status_code == 503
    assert response.json()["error"] == "drift_unavailable" and "cannot be created" in response.json()["detail"]
    assert client.get("/metrics").status_code == 200


def test_drift_logging_can_be_switched_off(e2e_settings: Settings, serve) -> None:  # type: ignore[no-untyped-def]
    client = serve(e2e_settings.model_copy(update={"drift_log": False}))
    assert client.post("/search", json={"query": "what is dropout"}).status_code == 200
    assert client.get("/drift").status_code == 503
    assert not (e2e_settings.resolved_state_dir / "drift").exists()
