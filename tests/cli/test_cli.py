"""The CLI: index build / inspect / search with a fake model, and one-line errors with no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from cli.commands import common
from tests.fakes import HashingEncoder

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("cli_fake_model")


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_build_inspect_search_round_trip(tiny_corpus: Path, tmp_path: Path) -> None:
    index = str(tmp_path / "idx")
    code, out, err = invoke("index", "build", "--corpus", str(tiny_corpus), "--index-dir", index, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["chunks"] >= 4 and summary["embedded"] == summary["chunks"] and summary["reused"] == 0
    assert summary["backends"] == ["faiss", "annoy", "lsi", "bm25"]

    code, out, _ = invoke("index", "build", "--corpus", str(tiny_corpus), "--index-dir", index, "--json")
    assert json.loads(out)["reused"] == summary["chunks"]

    code, out, err = invoke("index", "inspect", "--index-dir", index, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["chunks"] == summary["chunks"]
    assert 0 < info["max_tokens"] <= 128 and 0 < info["mean_tokens"] <= info["max_tokens"]
    graph = info["neighbour_graph"]
    assert graph["chunks"] == summary["chunks"] and graph["k"] == min(10, summary["chunks"] - 1)
    assert graph["method"] == "exact" and graph["disk_bytes"] > 0
    code, out, err = invoke("index", "inspect", "--index-dir", index)
    assert code == 0 and "graph " in out and "BM25 smoothing (exact" in out, err

    for method in ("dense", "lsi", "bm25", "hybrid"):
        code, out, err = invoke("search", "population stability index", "--index-dir", index,
                                "--method", method, "-k", "2", "--json")
        assert code == 0, err
        results = json.loads(out)["results"]
        assert results and results[0]["doc_id"] == "drift"
        assert set(results[0]) == {"rank", "id", "doc_id", "title", "heading", "text", "snippet", "score",
                                   "source_type", "path", "url", "page", "cell", "other_matches"}

    code, out, _ = invoke("search", "dropout", "--index-dir", index, "--backend", "annoy")
    assert code == 0 and "Dropout" in out


def test_build_only_some_backends(tiny_corpus: Path, tmp_path: Path) -> None:
    code, out, err = invoke("index", "build", "--corpus", str(tiny_corpus), "--index-dir", str(tmp_path / "i"),
                            "--backends", "bm25,lsi", "--json")
    assert code == 0, err
    assert json.loads(out)["backends"] == ["bm25", "lsi"]
    code, _, err = invoke("search", "dropout", "--index-dir", str(tmp_path / "i"), "--method", "dense")
    assert code == 1 and "'faiss' was not built" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["index", "build", "--corpus", "{tmp}/missing"], "corpus folder not found"),
        (["index", "build", "--corpus", "{tmp}/empty"], "no Markdown, text, PDF, HTML or notebook files"),
        (["index", "build", "--corpus", "{corpus}", "--backends", "faiss,bogus"], "unknown backend 'bogus'"),
        (["index", "inspect", "--index-dir", "{tmp}/never"], "no index at"),
        (["search", "dropout", "--index-dir", "{tmp}/never"], "no index at"),
    ],
)
def test_errors_are_one_line_with_non_zero_exit(
    args: list[str], message: str, tiny_corpus: Path, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    filled = [a.format(tmp=tmp_path, corpus=tiny_corpus) for a in args]
    code, out, err = invoke(*filled, "--index-dir", str(tmp_path / "x")) if args[1] == "build" else invoke(*filled)
    assert code == 1
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_bad_backend_option_stops_before_anything_is_written(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSEARCH_ANNOY_TRES", "3")
    monkeypatch.setattr(common, "get_encoder", lambda settings, model=None: pytest.fail("the model was loaded"))
    code, _, err = invoke("index", "build", "--corpus", str(tiny_corpus), "--index-dir", str(tmp_path / "idx"))
    assert code == 1 and not (tmp_path / "idx").exists()
    assert err.strip() == ("error: bad annoy backend options: unknown option 'tres' (MLSEARCH_ANNOY_TRES); "
                           "valid: trees, search_k")


def test_model_mismatch_is_a_clear_error(tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = str(tmp_path / "idx")
    assert invoke("index", "build", "--corpus", str(tiny_corpus), "--index-dir", index)[0] == 0
    monkeypatch.setattr(common, "get_encoder", lambda settings, model=None: HashingEncoder(name="other"))
    code, _, err = invoke("search", "dropout", "--index-dir", index, "--model", "other")
    assert code == 1 and "was built with model fake-hashing" in err


def test_real_process_prints_no_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli.app", "index", "build", "--corpus", str(tmp_path / "nope"),
         "--index-dir", str(tmp_path / "i")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: corpus folder not found: {tmp_path / 'nope'}"
