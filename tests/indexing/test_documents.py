"""Loading a corpus folder: front matter, plain text, cleaning, and files that must be skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexing.documents import clean_text, load_corpus
from mlsearch.errors import CorpusError


def test_markdown_front_matter_becomes_metadata(tiny_corpus: Path) -> None:
    loaded = load_corpus(tiny_corpus)
    by_id = {d.id: d for d in loaded.documents}
    assert sorted(by_id) == ["drift", "dropout", "faiss", "optimizers"]
    assert by_id["dropout"].meta["title"] == "Dropout"
    assert by_id["dropout"].meta["tags"] == ["deep-learning", "training"]
    assert by_id["dropout"].meta["format"] == "markdown"
    assert not by_id["dropout"].content.startswith("---")
    assert by_id["faiss"].meta["format"] == "text"
    assert by_id["faiss"].meta["title"] == "Faiss"
    assert loaded.skipped == []


def test_bad_files_are_reported_and_skipped(tiny_corpus: Path) -> None:
    (tiny_corpus / "latin1.md").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (tiny_corpus / "broken.md").write_text("---\ntitle: [unclosed\n---\nbody\n")
    (tiny_corpus / "empty.txt").write_text("   \n\n")
    (tiny_corpus / "image.png").write_bytes(b"\x89PNG")
    loaded = load_corpus(tiny_corpus)
    skipped = {s.path.name: s.reason for s in loaded.skipped}
    assert set(skipped) == {"latin1.md", "broken.md", "empty.txt", "image.png"}
    assert "unsupported file type (.png)" in skipped["image.png"]
    assert "UTF-8" in skipped["latin1.md"]
    assert "YAML" in skipped["broken.md"]
    assert len(loaded.documents) == 4


def test_nested_folders_give_path_ids_and_hidden_files_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "note.md").write_text("# Note\n\ntext")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.md").write_text("secret")
    loaded = load_corpus(tmp_path)
    assert [d.id for d in loaded.documents] == ["sub/note"]
    assert loaded.documents[0].meta["title"] == "Note"


def test_missing_and_empty_corpus_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="not found"):
        load_corpus(tmp_path / "nope")
    with pytest.raises(CorpusError, match="no Markdown, text, PDF, HTML or notebook files"):
        load_corpus(tmp_path)
    (tmp_path / "blank.md").write_text("\n")
    with pytest.raises(CorpusError, match="no readable documents"):
        load_corpus(tmp_path)


def test_clean_text_unescapes_markdown_outside_code_only() -> None:
    text = "use train\\_test\\_split\r\n\n\n\n<!-- hidden -->\n```\na\\_b\n```\u00a0"
    cleaned = clean_text(text)
    assert "train_test_split" in cleaned
    assert "a\\_b" in cleaned
    assert "hidden" not in cleaned
    assert "\n\n\n" not in cleaned and "\r" not in cleaned
