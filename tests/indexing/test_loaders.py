"""Loaders: PDF pages, HTML main text and URL, notebook cells, choosing by extension and content, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexing.backends.configs import build_config, search_config
from indexing.build import build_index
from indexing.chunking import Chunker, ChunkingConfig
from indexing.documents import load_corpus
from indexing.loaders.dispatch import load_bytes, source_type_for
from mlsearch.errors import DocumentError, UnsupportedDocumentError
from mlsearch.settings import Settings
from search.searcher import Searcher
from tests.documents_fixtures import HTML_PAGE, PDF_PAGES, make_encrypted_pdf, make_notebook, make_pdf
from tests.fakes import HashingEncoder


def _chunks(data: bytes, name: str, encoder: HashingEncoder) -> list:  # type: ignore[type-arg]
    document = load_bytes(data, name, "doc").document
    return Chunker(encoder.count_tokens, ChunkingConfig(target_tokens=40, max_tokens=120, overlap_tokens=4)) \
        .chunk_document(document)


def test_pdf_pages_are_kept_and_a_page_without_text_is_reported(fake_encoder: HashingEncoder) -> None:
    loaded = load_bytes(make_pdf(PDF_PAGES, title="Transformers paper"), "paper.pdf", "paper")
    assert loaded.document.meta["title"] == "Transformers paper"
    assert loaded.document.meta["source_type"] == "pdf"
    assert loaded.notes == ["page 2 has no text layer (a scanned image?); not indexed"]
    chunks = _chunks(make_pdf(PDF_PAGES), "paper.pdf", fake_encoder)
    pages = {c.page for c in chunks}
    assert pages == {1, 3}
    assert all(c.cell is None and c.source_type == "pdf" for c in chunks)
    (sine,) = [c for c in chunks if "sine and cosine" in c.text]
    assert sine.page == 3 and "self attention" not in sine.text  # a chunk never spans two pages


def test_bad_pdfs_are_clear_errors() -> None:
    with pytest.raises(DocumentError, match=r"paper\.pdf: .*encrypted"):
        load_bytes(make_encrypted_pdf(), "paper.pdf", "paper")
    with pytest.raises(DocumentError, match=r"broken\.pdf: the PDF is corrupt"):
        load_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 9 0 R >> garbage", "broken.pdf", "broken")
    with pytest.raises(DocumentError, match="no page of the PDF has a text layer"):
        load_bytes(make_pdf([[], []]), "scan.pdf", "scan")
    with pytest.raises(DocumentError, match="not a PDF"):
        load_bytes(b"hello", "fake.pdf", "fake")


def test_html_keeps_main_text_headings_title_and_canonical_url(fake_encoder: HashingEncoder) -> None:
    document = load_bytes(HTML_PAGE.encode(), "saved/page.html", "page").document
    assert document.meta["title"] == "Gradient clipping explained"
    assert document.meta["url"] == "https://example.org/gradient-clipping"
    content = document.content or ""
    assert "## In PyTorch" in content and "clip_grad_norm_" in content
    for boilerplate in ("zzzscriptword", "zzznavword", "zzzfooterword"):
        assert boilerplate not in content
    chunks = _chunks(HTML_PAGE.encode(), "saved/page.html", fake_encoder)
    assert any(c.heading == "In PyTorch" for c in chunks)
    assert {c.url for c in chunks} == {"https://example.org/gradient-clipping"}


def test_html_without_canonical_link_uses_the_file_path() -> None:
    page = HTML_PAGE.replace('<link rel="canonical" href="https://example.org/gradient-clipping">', "")
    assert load_bytes(page.encode(), "saved/page.html", "page").document.meta["url"] == "saved/page.html"


def test_notebook_cells_fenced_outputs_dropped_cell_index_kept(fake_encoder: HashingEncoder) -> None:
    document = load_bytes(make_notebook(), "kmeans.ipynb", "kmeans").document
    content = document.content or ""
    assert document.meta["title"] == "K-means clustering"
    assert "```python\nfrom sklearn.cluster import KMeans" in content
    assert "zzzoutputword" not in content
    chunks = _chunks(make_notebook(), "kmeans.ipynb", fake_encoder)
    by_cell = {c.cell: c for c in chunks}
    assert set(by_cell) == {0, 1, 2, 3}
    assert by_cell[1].text.startswith("```python") and by_cell[1].heading == ""
    assert by_cell[3].heading == "Choosing k"  # a code cell keeps the heading of the Markdown above it


def test_invalid_notebooks_are_clear_errors() -> None:
    with pytest.raises(DocumentError, match=r"nb\.ipynb: .*not valid JSON|nb\.ipynb: not a valid notebook"):
        load_bytes(b'{"cells": [', "nb.ipynb", "nb")
    with pytest.raises(DocumentError, match=r"nb\.ipynb: not a valid notebook"):
        load_bytes(b'{"cells": "nope", "nbformat": 4, "nbformat_minor": 5, "metadata": {}}', "nb.ipynb", "nb")


def test_type_is_chosen_by_extension_then_content() -> None:
    assert source_type_for("a.md", b"# x") == "markdown"
    assert source_type_for("a.txt", b"x") == "text"
    assert source_type_for("upload", make_pdf(PDF_PAGES)[:100]) == "pdf"
    assert source_type_for("page.txt", b"<!DOCTYPE html><html>") == "html"
    assert source_type_for("nb.json", make_notebook()[:200]) == "notebook"
    assert source_type_for("image.png", b"\x89PNG") is None
    with pytest.raises(UnsupportedDocumentError, match=r"image\.png: unsupported file type \(\.png\)"):
        load_bytes(b"\x89PNG", "image.png", "image")


def test_mixed_folder_indexes_and_is_found_with_page_cell_and_url(
    tmp_path: Path, settings: Settings, fake_encoder: HashingEncoder
) -> None:
    corpus = tmp_path / "mixed"
    corpus.mkdir()
    (corpus / "paper.pdf").write_bytes(make_pdf(PDF_PAGES))
    (corpus / "page.html").write_text(HTML_PAGE)
    (corpus / "kmeans.ipynb").write_bytes(make_notebook())
    (corpus / "note.md").write_text("# Note\n\nBagging trains models on bootstrap samples and averages them.")
    loaded = load_corpus(corpus)
    assert [n.reason for n in loaded.notes] == ["page 2 has no text layer (a scanned image?); not indexed"]
    build_index(build_config(settings), fake_encoder, corpus_dir=corpus, backends=["faiss", "bm25"])
    searcher = Searcher.open(settings.index_dir, search_config(settings), encoder=fake_encoder)
    top = searcher.search("sine cosine positional encodings", k=1, method="bm25").hits[0]
    assert (top.doc_id, top.source_type, top.page) == ("paper", "pdf", 3)
    top = searcher.search("elbow method inertia clusters", k=1, method="bm25").hits[0]
    assert (top.doc_id, top.source_type, top.cell) == ("kmeans", "notebook", 2)
    top = searcher.search("clip_grad_norm_ optimizer step", k=1, method="dense").hits[0]
    assert (top.doc_id, top.source_type, top.url) == ("page", "html", "https://example.org/gradient-clipping")
    top = searcher.search("bootstrap samples bagging", k=1, method="bm25").hits[0]
    assert (top.doc_id, top.source_type, top.page, top.cell) == ("note", "markdown", None, None)


def test_a_chunk_store_written_before_locations_existed_still_reads(tmp_path: Path) -> None:
    import sqlite3

    from indexing.chunks import Chunk
    from indexing.store import ChunkStore

    store = ChunkStore.write(tmp_path, [Chunk(id="c1", doc_id="d", title="T", heading="", text="x")], None)
    connection = sqlite3.connect(store.path)
    for column in ("source_type", "path", "url", "page", "cell"):
        connection.execute(f"ALTER TABLE chunks DROP COLUMN {column}")
    connection.commit()
    connection.close()
    (chunk,) = ChunkStore(store.path).get([0]).values()
    assert (chunk.id, chunk.source_type, chunk.page, chunk.cell) == ("c1", "", None, None)


def test_two_files_with_one_document_id_keep_the_first_and_report_the_second(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("# Notes\n\nMarkdown notes about bagging.")
    (tmp_path / "notes.pdf").write_bytes(make_pdf(PDF_PAGES))
    loaded = load_corpus(tmp_path)
    assert [d.meta["source_type"] for d in loaded.documents] == ["markdown"]
    assert [(s.path.name, s.reason) for s in loaded.skipped] == [
        ("notes.pdf", "same document id 'notes' as notes.md; rename one of them")
    ]
