"""The CLI and the service run an index's model as the index was built (backend, int8) when the settings leave
the encoder unset, whatever the default; a setting that does not fit the index is one clear error line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.state import searcher_factory
from cli.app import app
from indexing import embedding
from indexing.layout import current_version_dir
from indexing.manifest import Manifest
from mlsearch.settings import Settings
from tests.api.conftest import service_state, wait_ready
from tests.fakes import build_tiny_sentence_transformer

runner = CliRunner()


@pytest.fixture
def torch_index(tmp_path: Path, tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """An index of the tiny corpus built by ``index build --encoder-backend torch``; then onnx-int8 is made the
    default. Returns the index folder and the model folder."""
    model = build_tiny_sentence_transformer(tmp_path / "tiny", normalize=True, max_seq_length=32)
    for name, value in {"MLSEARCH_ENCODER_CACHE_DIR": str(tmp_path / "encoders"), "MLSEARCH_MODEL": str(model),
                        "MLSEARCH_CHUNK_TARGET_TOKENS": "24", "MLSEARCH_CHUNK_OVERLAP_TOKENS": "4",
                        "MLSEARCH_BACKENDS": '["faiss","bm25"]'}.items():
        monkeypatch.setenv(name, value)
    index = tmp_path / "idx"
    result = runner.invoke(app, ["index", "build", "--corpus", str(tiny_corpus), "--index-dir", str(index),
                                 "--encoder-backend", "torch", "--json"])
    assert result.exit_code == 0, result.output
    monkeypatch.setattr(embedding, "DEFAULT_ENCODER_BACKEND", "onnx")
    monkeypatch.setattr(embedding, "DEFAULT_ENCODER_INT8", True)
    return index, model


def test_search_and_rebuild_follow_the_index_under_another_default(
    torch_index: tuple[Path, Path], tiny_corpus: Path
) -> None:
    index, _ = torch_index
    result = runner.invoke(app, ["search", "dropout rate", "--method", "dense", "--index-dir", str(index), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"]
    rebuilt = runner.invoke(app, ["index", "build", "--corpus", str(tiny_corpus), "--index-dir", str(index), "--json"])
    assert rebuilt.exit_code == 0, rebuilt.output
    summary = json.loads(rebuilt.stdout)
    assert summary["embedded"] == 0 and summary["reused"] == summary["chunks"]  # same model, same precision
    model = Manifest.load(current_version_dir(index)).model
    assert (model.backend, model.quantization) == ("torch", None)


def test_an_explicit_int8_setting_on_a_full_precision_index_is_one_error_line(
    torch_index: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    index, _ = torch_index
    monkeypatch.setenv("MLSEARCH_ENCODER_INT8", "true")
    result = runner.invoke(app, ["search", "dropout rate", "--method", "dense", "--index-dir", str(index)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "MLSEARCH_ENCODER_INT8=false" in lines[0], result.stderr
    assert not list((index.parent / "encoders").rglob("*int8*"))  # refused before anything was exported


def test_the_service_serves_the_index_with_its_own_backend(torch_index: tuple[Path, Path]) -> None:
    index, _ = torch_index
    service = create_app(Settings(index_dir=index, watch_index=False), searcher_factory(), static_dir=None)
    with TestClient(service) as client:
        wait_ready(client)
        response = client.post("/search", json={"query": "dropout rate", "method": "dense"})
        assert response.status_code == 200 and response.json()["results"]
        encoder = service_state(service).require_searcher().encoder
        assert (encoder.name, getattr(encoder, "backend", None)) == (str(torch_index[1]), "torch")
