"""The default, end to end: ``mlsearch index build`` with no encoder setting runs the bundled model exported to
OpenVINO int8 (from the session's shared export cache, see tests/conftest.py), and ``mlsearch search`` finds with
it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from indexing.layout import current_version_dir
from indexing.manifest import Manifest
from tests.conftest import CORPUS_DIR

runner = CliRunner()


@pytest.mark.slow
def test_a_default_build_and_search_run_the_bundled_model_in_openvino_int8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("MLSEARCH_ENCODER_BACKEND", "MLSEARCH_ENCODER_INT8", "MLSEARCH_MODEL"):
        monkeypatch.delenv(name, raising=False)
    index = tmp_path / "idx"
    built = runner.invoke(app, ["index", "build", "--corpus", str(CORPUS_DIR), "--index-dir", str(index), "--json"])
    assert built.exit_code == 0, built.output
    assert json.loads(built.stdout)["chunks"] > 400
    model = Manifest.load(current_version_dir(index)).model
    assert (model.name, model.backend, model.quantization) == (
        "sentence-transformers/all-MiniLM-L6-v2", "openvino", "int8"
    )
    found = runner.invoke(app, ["search", "how does dropout prevent overfitting", "--method", "dense", "-k", "3",
                                "--index-dir", str(index), "--json"])
    assert found.exit_code == 0, found.output
    assert "dropout" in [hit["doc_id"] for hit in json.loads(found.stdout)["results"]]
