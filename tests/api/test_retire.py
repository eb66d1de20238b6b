"""Replaced searchers are closed once no request holds them: open files stay flat across many reloads."""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.api.conftest import ADMIN_KEY, service_state

KEY = {"X-API-Key": ADMIN_KEY}


def _open_index_files(index_root: Path) -> Counter[str]:
    """This process's open file descriptors on files under ``index_root`` (every version), by file name."""
    names: Counter[str] = Counter()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = Path(os.readlink(f"/proc/self/fd/{fd}"))
            if target.is_relative_to(index_root):
                names[target.name] += 1
    return names


def _search_every_method(client: TestClient) -> None:
    for method in ("dense", "bm25", "lsi", "hybrid"):
        response = client.post("/search", json={"query": "gradient descent", "method": method, "k": 3})
        assert response.status_code == 200, response.text


def _settled(app: FastAPI) -> None:
    """Wait until the drift log has measured every answered query (it holds their searchers until then)."""
    drift = service_state(app).drift
    assert drift is not None and drift.writer.flush(timeout=30)


def test_open_files_stay_flat_across_many_reloads(client: TestClient, app: FastAPI, built_index: Path) -> None:
    index_root = Path(os.path.realpath(built_index)).parent
    for _ in range(3):  # warm up: the worker threads' connections, lazily imported libraries
        assert client.post("/admin/reload", params={"force": "true"}, headers=KEY).status_code == 200
        _search_every_method(client)
    _settled(app)
    before = _open_index_files(index_root)
    assert before["chunks.sqlite"] and before["data.csc.index.npy"]  # the served version's files are open
    for _ in range(20):
        assert client.post("/admin/reload", params={"force": "true"}, headers=KEY).json()["reloaded"] is True
        _search_every_method(client)
    _settled(app)
    after = _open_index_files(index_root)
    # every file, BM25's memory-mapped arrays included: the drift log measured queries on replaced searchers
    # after they were closed, which loaded their backends again, and nothing closed those
    assert after == before, (before, after)
    state = service_state(app)
    assert state._retired == [] and list(state._leases) == [id(state.searcher)] and state._users == {}


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


def test_a_borrowed_searcher_stays_open_until_the_borrower_is_done(client: TestClient, app: FastAPI) -> None:
    state = service_state(app)
    with state.borrowed() as borrowed:  # as the drift log's writer measures a batch
        assert client.post("/admin/reload", params={"force": "true"}, headers=KEY).json()["reloaded"] is True
        assert borrowed in state._retired  # replaced, but not closed under the measurement
        assert borrowed.search("gradient descent", k=1, method="bm25").hits
    assert borrowed not in state._retired and id(borrowed) not in state._users


def test_closing_a_replaced_searcher_gives_freed_memory_back(
    client: TestClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    import api.state

    trims: list[int] = []
    monkeypatch.setattr(api.state, "trim_heap", lambda: trims.append(1))
    assert client.post("/admin/reload", params={"force": "true"}, headers=KEY).json()["reloaded"] is True
    assert trims == [1]  # one replaced searcher closed, one trim
    api.state._libc.cache_clear()
    monkeypatch.undo()
    api.state.trim_heap()  # glibc's malloc_trim here; a no-op where there is none
