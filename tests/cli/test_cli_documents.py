"""``mlsearch index add``, ``index remove`` and ``index build --watch`` with the fake model."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from indexing.layout import current_version_dir
from indexing.store import ChunkStore
from tests.documents_fixtures import PDF_PAGES, make_notebook, make_pdf

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("cli_fake_model")


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _doc_ids(index: Path) -> set[str]:
    return {c.doc_id for c in ChunkStore(current_version_dir(index) / ChunkStore.FILE)}


def test_add_and_remove_update_the_index_without_a_rebuild(tiny_corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    assert invoke("index", "build", "--corpus", str(tiny_corpus), "--index-dir", str(index), "--json")[0] == 0
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "paper.pdf").write_bytes(make_pdf(PDF_PAGES))
    (tmp_path / "new" / "kmeans.ipynb").write_bytes(make_notebook())
    code, out, err = invoke("index", "add", str(tmp_path / "new"), "--tags", "papers", "--index-dir", str(index),
                            "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["changed"] == ["kmeans", "paper"] and summary["reused"] > 0
    assert "page 2 has no text layer" in err
    code, out, err = invoke("search", "sine cosine positional", "--index-dir", str(index), "--method", "bm25")
    assert code == 0 and "(paper, page 3)" in out
    code, out, err = invoke("index", "remove", "paper", "dropout", "--index-dir", str(index))
    assert code == 0, err
    assert "2 deleted" in out
    assert _doc_ids(index) == {"drift", "faiss", "optimizers", "kmeans"}
    code, out, err = invoke("index", "remove", "paper", "--index-dir", str(index))
    assert code == 1 and "no document with id 'paper'" in err


def test_add_refuses_bad_files_with_a_clear_error(tiny_corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"
    invoke("index", "build", "--corpus", str(tiny_corpus), "--index-dir", str(index))
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    code, _, err = invoke("index", "add", str(tmp_path / "image.png"), "--index-dir", str(index))
    assert code == 1 and "unsupported file type (.png)" in err
    code, _, err = invoke("index", "add", str(tmp_path / "missing.md"), "--index-dir", str(index))
    assert code == 1 and "no such file" in err


def test_build_watch_follows_the_folder(tiny_corpus: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx"

    def edit_folder() -> None:
        deadline = time.monotonic() + 60
        while not index.exists() and time.monotonic() < deadline:  # the first build has been published
            time.sleep(0.05)
        (tiny_corpus / "bagging.md").write_text("# Bagging\n\nBootstrap aggregating averages many models.")
        (tiny_corpus / "faiss.txt").unlink()

    editor = threading.Thread(target=edit_folder)
    editor.start()
    code, out, err = invoke("index", "build", "--corpus", str(tiny_corpus), "--index-dir", str(index), "--watch",
                            "--interval", "0.4", "--max-polls", "6")
    editor.join()
    assert code == 0, err
    assert "updated to version" in out
    assert _doc_ids(index) == {"bagging", "drift", "dropout", "optimizers"}
