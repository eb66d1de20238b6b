"""``POST /admin/reload`` and the index watcher: auth, swaps, failures, and no failed request under load."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.state import searcher_factory
from indexing.backends.configs import build_config
from indexing.build import BuildSummary, build_index
from mlsearch.errors import ModelLoadError
from mlsearch.settings import Settings
from tests.api.conftest import ADMIN_KEY, BACKENDS, service_state, wait_ready, wait_until
from tests.fakes import HashingEncoder

KEY = {"X-API-Key": ADMIN_KEY}


def rebuild(corpus: Path, settings: Settings, encoder: HashingEncoder, name: str) -> BuildSummary:
    """Add an article to the corpus and build a new index version into the same directory."""
    (corpus / f"{name}.md").write_text(
        f"---\ntitle: {name}\ntags: [new]\n---\n# {name}\n\nBatch normalization of {name} rescales activations.\n"
    )
    return build_index(build_config(settings), encoder, corpus_dir=corpus, backends=BACKENDS)


def test_reload_needs_the_admin_key(client: TestClient) -> None:
    missing = client.post("/admin/reload")
    assert missing.status_code == 401 and missing.json()["error"] == "missing_api_key"
    wrong = client.post("/admin/reload", headers={"X-API-Key": "guess"})
    assert wrong.status_code == 403 and "wrong" in wrong.json()["detail"]
    right = client.post("/admin/reload", headers=KEY)
    assert right.status_code == 200
    assert right.json()["reloaded"] is False


@pytest.mark.parametrize("key", [None, ""])
def test_reload_is_disabled_without_a_configured_key(
    built_index: Path, api_settings: Settings, make_app: Callable[..., FastAPI], key: str | None
) -> None:
    app = make_app(api_settings, admin_api_key=SecretStr(key) if key is not None else None)
    with TestClient(app) as client:
        response = client.post("/admin/reload", headers=KEY)
        assert response.status_code == 403
        assert "disabled" in response.json()["detail"] and "MLSEARCH_ADMIN_API_KEY" in response.json()["detail"]


def test_reload_moves_to_the_new_version(
    client: TestClient, tiny_corpus: Path, api_settings: Settings, fake_encoder: HashingEncoder
) -> None:
    old = client.get("/index").json()["version"]
    summary = rebuild(tiny_corpus, api_settings, fake_encoder, "batchnorm")
    assert client.get("/index").json()["version"] == old  # nothing moves until asked
    body = client.post("/admin/reload", headers=KEY).json()
    assert body == {"reloaded": True, "version": summary.version, "previous_version": old}
    info = client.get("/index").json()
    assert info["version"] == summary.version and info["reloads"] == 1
    hits = client.post("/search", json={"query": "batch normalization", "filters": {"tags": ["new"]}}).json()
    assert [hit["doc_id"] for hit in hits["results"]] == ["batchnorm"]
    forced = client.post("/admin/reload", params={"force": "true"}, headers=KEY).json()
    assert forced["reloaded"] is True and forced["version"] == summary.version


def test_reload_reuses_the_model_when_its_weights_match(
    client: TestClient, app: FastAPI, tiny_corpus: Path, api_settings: Settings, fake_encoder: HashingEncoder
) -> None:
    loads: list[str] = []
    state = service_state(app)
    state.factory = searcher_factory(lambda name: loads.append(name) or HashingEncoder())  # type: ignore[func-returns-value]
    rebuild(tiny_corpus, api_settings, fake_encoder, "batchnorm")
    assert client.post("/admin/reload", headers=KEY).json()["reloaded"] is True
    assert loads == []
    assert state.require_searcher().encoder is fake_encoder


def test_a_failed_reload_keeps_the_current_index_serving(
    client: TestClient, app: FastAPI, tiny_corpus: Path, api_settings: Settings
) -> None:
    old = client.get("/index").json()["version"]

    def cannot_load(name: str) -> HashingEncoder:
        raise ModelLoadError(f"cannot load model {name!r} offline")

    service_state(app).factory = searcher_factory(cannot_load)
    rebuild(tiny_corpus, api_settings, HashingEncoder(name="another-model"), "batchnorm")
    response = client.post("/admin/reload", headers=KEY)
    assert response.status_code == 503 and "another-model" in response.json()["detail"]
    assert client.get("/index").json()["version"] == old
    assert client.post("/search", json={"query": "dropout"}).status_code == 200
    assert client.get("/ready").status_code == 200


@contextmanager
def queries_running(client: TestClient, threads: int = 4) -> Iterator[tuple[Counter[str], list[str]]]:
    """Send searches and comparisons from several threads until the block ends.

    Yields:
        Answers counted by the index version that gave them, and a description of every failed request.
    """
    versions: Counter[str] = Counter()
    failures: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()
    requests = [
        ("/search", {"query": "dropout rate", "method": "dense"}),
        ("/search", {"query": "adam momentum", "method": "hybrid", "backend": "annoy"}),
        ("/search", {"query": "population stability", "method": "lsi"}),
        ("/search", {"query": "kolmogorov smirnov", "method": "bm25", "filters": {"tags": ["drift"]}}),
        ("/compare", {"query": "similarity search", "methods": ["lsi", "dense", "bm25"]}),
    ]

    def worker(offset: int) -> None:
        i = offset
        while not stop.is_set():
            path, body = requests[i % len(requests)]
            i += 1
            try:
                response = client.post(path, json=body)
                ok = response.status_code == 200
                detail = "" if ok else f"{path} {response.status_code} {response.text[:200]}"
                version = response.json().get("index_version", "") if ok else ""
            except Exception as exc:  # a transport error is a failed request too
                ok, detail, version = False, f"{path} raised {exc!r}", ""
            with lock:
                if ok:
                    versions[version] += 1
                else:
                    failures.append(detail)

    pool = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(threads)]
    for thread in pool:
        thread.start()
    try:
        yield versions, failures
    finally:
        stop.set()
        for thread in pool:
            thread.join(timeout=30)


def test_admin_reload_under_concurrent_queries_fails_no_request(
    client: TestClient, tiny_corpus: Path, api_settings: Settings, fake_encoder: HashingEncoder
) -> None:
    old = client.get("/index").json()["version"]
    with queries_running(client) as (versions, failures):
        wait_until(lambda: versions[old] >= 20, what="queries on the old version")
        summary = rebuild(tiny_corpus, api_settings, fake_encoder, "batchnorm")
        response = client.post("/admin/reload", headers=KEY)
        assert response.status_code == 200 and response.json()["version"] == summary.version
        wait_until(lambda: versions[summary.version] >= 20, what="queries on the new version")
    assert failures == []
    assert set(versions) == {old, summary.version}
    assert client.get("/index").json()["version"] == summary.version


def test_watcher_follows_rebuilds_under_concurrent_queries(
    built_index: Path, tiny_corpus: Path, api_settings: Settings, fake_encoder: HashingEncoder,
    make_app: Callable[..., FastAPI],
) -> None:
    app = make_app(api_settings, watch_index=True, watch_interval_s=0.05)
    with TestClient(app) as client:
        wait_ready(client)
        old = client.get("/index").json()["version"]
        with queries_running(client) as (versions, failures):
            wait_until(lambda: versions[old] >= 20, what="queries on the old version")
            for name in ("batchnorm", "layernorm"):
                new = rebuild(tiny_corpus, api_settings, fake_encoder, name).version
                wait_until(lambda v=new: client.get("/index").json()["version"] == v,  # type: ignore[misc]
                           what=f"the watcher to load {new}")
                wait_until(lambda v=new: versions[v] >= 20, what="queries on the new version")  # type: ignore[misc]
        assert failures == []
        assert len(versions) == 3 and client.get("/index").json()["reloads"] == 2
        metrics = client.get("/metrics").text
        assert 'mlsearch_index_reloads_total{outcome="reloaded"} 2.0' in metrics
