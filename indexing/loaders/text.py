"""Plain-text files: split on blank lines, no Markdown syntax read."""

from __future__ import annotations

from indexing.loaders.base import LoadedDocument, clean_text, make_document, title_from_path

SOURCE_TYPE = "text"
SUFFIXES = frozenset({".txt", ".text"})


def load_plain_text(raw: str, path: str, doc_id: str, title: str = "", tags: object = None) -> LoadedDocument:
    """Load plain text from a string (a file's text or an API body)."""
    content = clean_text(raw, markdown=False)
    return LoadedDocument(make_document(
        doc_id, content, title=title or title_from_path(path), path=path, text_format="text",
        source_type=SOURCE_TYPE, tags=tags,
    ))


def load(data: bytes, path: str, doc_id: str) -> LoadedDocument:
    """Load a text file's bytes.

    Raises:
        UnicodeDecodeError: Not UTF-8.
    """
    return load_plain_text(data.decode("utf-8"), path, doc_id)
