"""Fixtures of the API tests: an app over the tiny index with the fake encoder, and a client on it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.state import ServiceState, searcher_factory
from mlsearch.settings import Settings
from tests.fakes import HashingEncoder, updated_settings

ADMIN_KEY = "test-admin-key"
BACKENDS = ["faiss", "annoy", "lsi", "bm25"]


def wait_until(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``check`` until it holds, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def wait_ready(client: TestClient) -> None:
    """Wait until the app has loaded its index."""
    wait_until(lambda: client.get("/ready").status_code == 200, what="/ready")


def service_state(app: FastAPI) -> ServiceState:
    """The app's service state."""
    state: ServiceState = app.state.service
    return state


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    """The test settings with an admin key and no directory watcher."""
    return settings.model_copy(update={"admin_api_key": SecretStr(ADMIN_KEY), "watch_index": False})


@pytest.fixture
def make_app(fake_encoder: HashingEncoder) -> Callable[..., FastAPI]:
    """Build an app over ``settings.index_dir`` whose model is the fake encoder."""

    def make(settings: Settings, **updates: object) -> FastAPI:
        return create_app(updated_settings(settings, **updates), searcher_factory(lambda name: fake_encoder))

    return make


@pytest.fixture
def app(built_index: Path, api_settings: Settings, make_app: Callable[..., FastAPI]) -> FastAPI:
    """An app over the tiny index (faiss, annoy, lsi, bm25)."""
    return make_app(api_settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A started client whose index is loaded."""
    with TestClient(app) as test_client:
        wait_ready(test_client)
        yield test_client
