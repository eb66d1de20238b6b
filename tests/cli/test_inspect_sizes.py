"""``mlsearch index inspect``: disk and memory per backend, and advice for a large index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from indexing.layout import current_version_dir
from indexing.manifest import Manifest
from indexing.sizes import EXACT_SEARCH_LIMIT, disk_bytes, scale_advice

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("cli_fake_model")


def test_inspect_reports_disk_and_memory_per_backend(tiny_corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    result = runner.invoke(app, ["index", "build", "--corpus", str(tiny_corpus), "--index-dir", str(index), "--json"])
    assert result.exit_code == 0, result.stderr
    result = runner.invoke(app, ["index", "inspect", "--index-dir", str(index), "--memory", "--json"])
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    directory = current_version_dir(index)
    assert set(info["disk_bytes"]) == {"chunks.sqlite", "faiss", "annoy", "lsi", "bm25"}
    for name, size in info["disk_bytes"].items():
        assert size == disk_bytes(directory / name) > 0
    assert set(info["memory_bytes"]) == {"faiss", "annoy", "lsi", "bm25"}
    assert all(isinstance(v, int) and v >= 0 for v in info["memory_bytes"].values())
    assert info["advice"] == []  # a handful of chunks needs no advice

    result = runner.invoke(app, ["index", "inspect", "--index-dir", str(index)])
    assert result.exit_code == 0 and "MiB on disk" in result.stdout and "in memory" not in result.stdout


def test_a_large_exact_index_gets_advice(tiny_corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    runner.invoke(app, ["index", "build", "--corpus", str(tiny_corpus), "--index-dir", str(index),
                        "--backends", "faiss", "--json"])
    manifest = Manifest.load(current_version_dir(index))
    assert scale_advice(manifest, EXACT_SEARCH_LIMIT) == []
    [advice] = scale_advice(manifest, EXACT_SEARCH_LIMIT + 1)
    assert "HNSW32" in advice and "IVF" in advice
    assert len(scale_advice(manifest, 20 * EXACT_SEARCH_LIMIT)) == 2
