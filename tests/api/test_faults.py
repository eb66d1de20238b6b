"""Faults under a running service: damaged index versions, a corrupt drift log, tampered model weights.

In each case the service keeps answering searches with the version it has, refuses what is damaged with a
logged reason, and loses nothing that it had acknowledged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.state import searcher_factory
from indexing import embedding
from indexing.integrity import CHECKSUMS_FILE
from indexing.layout import current_version_dir
from mlsearch.settings import Settings
from tests.api.conftest import ADMIN_KEY, service_state, wait_ready, wait_until
from tests.api.test_reload import queries_running, rebuild
from tests.fakes import HashingEncoder

KEY = {"X-API-Key": ADMIN_KEY}
SEARCHES = [
    {"query": "dropout rate", "method": "dense", "backend": "faiss"},
    {"query": "dropout rate", "method": "dense", "backend": "annoy"},
    {"query": "adam momentum", "method": "lsi"},
    {"query": "adam momentum", "method": "bm25"},
    {"query": "population stability", "method": "hybrid"},
]


def damage(path: Path, how: str) -> None:
    """Truncate a file to half its size, or scramble its middle third in place (same size)."""
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:
        third = len(data) // 3
        scrambled = bytes((b * 7 + 13) % 256 for b in data[third: 2 * third])
        path.write_bytes(data[:third] + scrambled + data[2 * third:])


def assert_serving(client: TestClient, version: str) -> None:
    """Every method and backend answers 200 from ``version``."""
    for body in SEARCHES:
        response = client.post("/search", json=body)
        assert response.status_code == 200, (body, response.text)
        assert response.json()["index_version"] == version
    assert client.get("/ready").json()["index_version"] == version


@pytest.mark.parametrize("how", ["truncate", "corrupt"])
@pytest.mark.parametrize("part", [
    "faiss/faiss.index", "annoy/annoy.ann", "bm25/data.csc.index.npy", "lsi/components.npy", "chunks.sqlite",
    "manifest.json",
])
def test_a_damaged_new_version_is_refused_and_the_current_one_keeps_serving(
    client: TestClient, tiny_corpus: Path, api_settings: Settings, fake_encoder: HashingEncoder,
    caplog: pytest.LogCaptureFixture, part: str, how: str,
) -> None:
    old = client.get("/index").json()["version"]
    new = rebuild(tiny_corpus, api_settings, fake_encoder, "batchnorm").version
    damage(current_version_dir(api_settings.index_dir) / part, how)
    with caplog.at_level(logging.WARNING), queries_running(client, threads=2) as (versions, failures):
        response = client.post("/admin/reload", headers=KEY)
    assert response.status_code == 503
    assert response.json()["error"] in {"index_corrupt", "index_not_built"}
    reason = response.json()["detail"]
    assert new in reason or "manifest" in reason
    assert any("cannot load index" in r.getMessage() and reason in r.getMessage() for r in caplog.records)
    assert failures == [] and set(versions) <= {old}
    assert_serving(client, old)


@pytest.mark.parametrize("part", ["faiss/faiss.index", "bm25/data.csc.index.npy", "chunks.sqlite"])
def test_without_checksums_loading_and_probing_still_catch_a_truncated_file(
    client: TestClient, tiny_corpus: Path, api_settings: Settings, fake_encoder: HashingEncoder, part: str
) -> None:
    old = client.get("/index").json()["version"]
    rebuild(tiny_corpus, api_settings, fake_encoder, "batchnorm")
    version_dir = current_version_dir(api_settings.index_dir)
    (version_dir / CHECKSUMS_FILE).unlink()
    damage(version_dir / part, "truncate")
    response = client.post("/admin/reload", headers=KEY)
    assert response.status_code == 503 and response.json()["error"] == "index_corrupt"
    assert part.split("/")[0].removesuffix(".sqlite").replace("chunks", "chunk store") in response.json()["detail"]
    assert_serving(client, old)


def test_the_watcher_skips_a_damaged_version_and_takes_the_next_good_one(
    built_index: Path, tiny_corpus: Path, api_settings: Settings, fake_encoder: HashingEncoder,
    make_app: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch,
) -> None:
    import indexing.layout as layout

    publish = layout.publish

    def publish_damaged(index_dir: Path, build_dir: Path, keep: int) -> Path:
        final = publish(index_dir, build_dir, keep)
        damage(final / "annoy" / "annoy.ann", "truncate")
        return final

    app = make_app(api_settings, watch_index=True, watch_interval_s=0.05)
    with TestClient(app) as client:
        wait_ready(client)
        old = client.get("/index").json()["version"]
        with monkeypatch.context() as patch:
            patch.setattr("indexing.build.publish", publish_damaged)
            rebuild(tiny_corpus, api_settings, fake_encoder, "batchnorm")
        state = service_state(app)
        wait_until(lambda: state.failed_target is not None, what="the watcher to try the damaged version")
        assert state.failed_target == str(current_version_dir(api_settings.index_dir))
        assert_serving(client, old)
        good = rebuild(tiny_corpus, api_settings, fake_encoder, "layernorm").version
        wait_until(lambda: client.get("/index").json()["version"] == good, what="the watcher to load the good one")
        assert_serving(client, good)
        assert 'mlsearch_index_reloads_total{outcome="failed"} 1.0' in client.get("/metrics").text


def test_a_corrupt_drift_log_is_kept_aside_and_a_new_one_started(
    built_index: Path, api_settings: Settings, make_app: Callable[..., FastAPI]
) -> None:
    log = api_settings.resolved_state_dir / "drift" / "queries.sqlite"
    log.parent.mkdir(parents=True)
    damaged = b"SQLite format 3\x00" + bytes(range(256)) * 40
    log.write_bytes(damaged)
    with TestClient(make_app(api_settings)) as client:
        wait_ready(client)
        assert client.post("/search", json={"query": "dropout"}).status_code == 200
        drift = client.get("/drift")
        assert drift.status_code == 200 and drift.json()["log"]["rows"] == 1
    aside = list(log.parent.glob("queries.sqlite.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == damaged  # the damaged file is kept, byte for byte


def test_tampered_model_weights_are_refused_at_load_and_the_current_version_keeps_serving(
    client: TestClient, app: FastAPI, tiny_corpus: Path, api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = client.get("/index").json()["version"]
    monkeypatch.setattr(embedding, "BUNDLED_SHA256", "0" * 64)  # the weights on disk no longer match it
    service_state(app).factory = searcher_factory(embedding.load_encoder)
    rebuild(tiny_corpus, api_settings, HashingEncoder(name="all-MiniLM-L6-v2"), "batchnorm")
    response = client.post("/admin/reload", headers=KEY)
    assert response.status_code == 503 and response.json()["error"] == "model_unavailable"
    assert "sha256" in response.json()["detail"] and "0" * 64 in response.json()["detail"]
    assert_serving(client, old)
