"""``mlsearch serve``: options become settings, the app is handed to uvicorn, and it loads the model once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cli.app import app as cli
from cli.commands import common
from tests.api.conftest import wait_ready
from tests.fakes import HashingEncoder


def test_serve_runs_the_app_with_uvicorn(
    built_index: Path, fake_encoder: HashingEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str | None] = []
    runs: list[dict[str, Any]] = []
    encoder_threads: list[int | None] = []

    def get_encoder(settings: object, model: str | None = None, threads: int | None = None) -> HashingEncoder:
        loads.append(model)
        encoder_threads.append(threads)
        return fake_encoder

    monkeypatch.setattr(common, "get_encoder", get_encoder)
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: runs.append({"app": app, **options}))
    threads: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)

    result = CliRunner().invoke(cli, ["serve", "--index-dir", str(built_index), "--host", "127.0.0.1",
                                      "--port", "8123", "--no-watch"])
    assert result.exit_code == 0, result.output
    assert len(runs) == 1 and (runs[0]["host"], runs[0]["port"]) == ("127.0.0.1", 8123)
    app = runs[0]["app"]
    settings = app.state.service.settings
    assert settings.index_dir == built_index and settings.watch_index is False
    assert loads == []  # nothing loads before the lifespan starts
    assert threads == [1]  # MLSEARCH_SERVE_TORCH_THREADS: one intra-op thread per request
    assert runs[0]["timeout_graceful_shutdown"] == settings.shutdown_grace_s  # in-flight requests finish
    assert "%(request_id)s" in runs[0]["log_config"]["formatters"]["access"]["fmt"]

    with TestClient(app) as client:
        wait_ready(client)
        assert client.post("/search", json={"query": "dropout"}).status_code == 200
    assert loads == ["fake-hashing"]  # the index's model, loaded once
    assert encoder_threads == [1]  # OpenVINO / ONNX Runtime get as many threads as torch


def test_serve_rejects_a_bad_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: pytest.fail("must not start"))
    result = CliRunner().invoke(cli, ["serve", "--port", "70000"])
    assert result.exit_code == 1
    assert "port" in result.stderr
