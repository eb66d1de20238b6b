"""The Elasticsearch backend through the service: served from a fake node, and a 503 naming it when it is down.

The cluster is :class:`tests.indexing.es_fake.FakeCluster` behind the real client; "down" is a closed loopback
port, so nothing leaves the machine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from indexing.backends.configs import build_config
from indexing.build import build_index
from mlsearch.settings import Settings
from tests.api.conftest import wait_ready
from tests.fakes import HashingEncoder, updated_settings
from tests.indexing import es_fake

UNREACHABLE = "http://127.0.0.1:9"  # a closed loopback port: connection refused at once


@pytest.fixture
def es_index(
    tiny_corpus: Path, api_settings: Settings, fake_encoder: HashingEncoder, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The tiny corpus built with faiss, lsi, bm25 and Elasticsearch (on a fake node that stays installed)."""
    es_fake.install(monkeypatch)
    settings = updated_settings(
        api_settings, elasticsearch_url="http://es.test:9200", elasticsearch_max_retries=0,
        elasticsearch_initial_backoff=0.0, elasticsearch_timeout=1.0,
    )
    build_index(build_config(settings), fake_encoder, corpus_dir=tiny_corpus,
                backends=["faiss", "lsi", "bm25", "elasticsearch"])
    return settings


def test_elasticsearch_answers_dense_bm25_and_hybrid(es_index: Settings, make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(es_index)) as client:
        wait_ready(client)
        for method in ("dense", "bm25", "hybrid"):
            response = client.post("/search", json={"query": "dropout rate", "k": 3, "method": method,
                                                    "backend": "elasticsearch"})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["backend"] == "elasticsearch" and body["results"]
            assert body["results"][0]["doc_id"] == "dropout"
        compare = client.post("/compare", json={"query": "momentum", "methods": ["lsi", "dense"],
                                                "backend": "elasticsearch"}).json()
        assert compare["runs"]["dense"]["backend"] == "elasticsearch"


def test_elasticsearch_down_is_503_naming_it_while_others_answer(
    es_index: Settings, make_app: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()  # the real client again, now pointed at a closed port
    with TestClient(make_app(es_index, elasticsearch_url=UNREACHABLE)) as client:
        wait_ready(client)
        for method in ("dense", "bm25", "hybrid"):
            response = client.post("/search", json={"query": "dropout", "method": method,
                                                    "backend": "elasticsearch"})
            assert response.status_code == 503, response.text
            body = response.json()
            assert body["error"] == "backend_unavailable" and body["backend"] == "elasticsearch"
            assert "127.0.0.1:9" in body["detail"]
        for method in ("dense", "lsi", "bm25", "hybrid"):
            assert client.post("/search", json={"query": "dropout", "method": method}).status_code == 200
