"""Replaced searchers are closed once no request holds them: open files stay flat across many reloads."""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.api.conftest import ADMIN_KEY, service_state

KEY = {"X-API-Key": ADMIN_KEY}


def _open_index_files() -> Counter[str]:
    """This process's open file descriptors on index files, by file name."""
    names: Counter[str] = Counter()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            names[Path(os.readlink(f"/proc/self/fd/{fd}")).name] += 1
    return names


def _search_every_method(client: TestClient) -> None:
    for method in ("dense", "bm25", "lsi", "hybrid"):
        response = client.post("/search", json={"query": "gradient descent", "method": method, "k": 3})
        assert response.status_code == 200, response.text


def test_open_files_stay_flat_across_many_reloads(client: TestClient, app: FastAPI) -> None:
    for _ in range(3):  # warm up: the worker threads' connections, lazily imported libraries
        assert client.post("/admin/reload", params={"force": "true"}, headers=KEY).status_code == 200
        _search_every_method(client)
    before = _open_index_files()
    for _ in range(20):
        assert client.post("/admin/reload", params={"force": "true"}, headers=KEY).json()["reloaded"] is True
        _search_every_method(client)
    after = _open_index_files()
    for name in ("chunks.sqlite", "annoy.ann", "documents.npy"):  # each reload leaked one of each before
        assert after[name] <= before[name], (name, before[name], after[name])
    state = service_state(app)
    assert state._retired == [] and list(state._leases) == [id(state.searcher)]


def test_a_replaced_searcher_stays_open_while_a_request_holds_it(client: TestClient, app: FastAPI) -> None:
    state = service_state(app)
    held = state.acquire()  # as a request in flight does
    assert client.post("/admin/reload", params={"force": "true"}, headers=KEY).json()["reloaded"] is True
    assert held in state._retired and held is not state.searcher
    assert held.search("gradient descent", k=1, method="bm25").hits  # still usable: not closed under the request
    state.release(held)
    assert held not in state._retired and id(held) not in state._leases


def test_the_served_version_is_leased(client: TestClient, app: FastAPI, built_index: Path) -> None:
    state = service_state(app)
    assert state.searcher is not None
    assert Path(os.path.realpath(built_index)) == state.searcher.directory
    assert id(state.searcher) in state._leases
