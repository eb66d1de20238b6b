"""Pick the loader for a file by its extension, or by its first bytes when the extension says nothing."""

from __future__ import annotations

from pathlib import PurePath
from types import ModuleType

from indexing.loaders import html, markdown, notebook, pdf, text
from indexing.loaders.base import LoadedDocument, normalise_tags
from mlsearch.errors import DocumentError, UnsupportedDocumentError

LOADERS: dict[str, ModuleType] = {m.SOURCE_TYPE: m for m in (markdown, text, pdf, html, notebook)}
SNIFFERS: tuple[ModuleType, ...] = (pdf, notebook, html)
SUPPORTED_SUFFIXES = frozenset(s for m in LOADERS.values() for s in m.SUFFIXES)


def source_type_for(name: str, head: bytes) -> str | None:
    """The source type of a file (``pdf``, ``html``, …) from its name, else its first bytes; None if unknown.

    A PDF, notebook or HTML page is recognised by its content even under a misleading extension.
    """
    for module in SNIFFERS:
        if module.sniff(head):
            return str(module.SOURCE_TYPE)
    suffix = PurePath(name).suffix.lower()
    for source_type, module in LOADERS.items():
        if suffix in module.SUFFIXES:
            return source_type
    return None


def load_bytes(data: bytes, name: str, doc_id: str) -> LoadedDocument:
    """Load one file's bytes with the loader its type calls for.

    Args:
        data: The file's content.
        name: Its path or file name (for the extension, the default title and messages).
        doc_id: The document id to give it.

    Raises:
        UnsupportedDocumentError: Neither the extension nor the content is a supported type.
        DocumentError: The file cannot be read (the message names it and says why), or holds no text.
    """
    source_type = source_type_for(name, data[:2048])
    if source_type is None:
        suffix = PurePath(name).suffix.lower() or "no extension"
        raise UnsupportedDocumentError(
            f"{name}: unsupported file type ({suffix}); supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
        )
    try:
        loaded = LOADERS[source_type].load(data, name, doc_id)
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{name}: not valid UTF-8 text") from exc
    except ValueError as exc:
        raise DocumentError(f"{name}: {exc}") from exc
    if not (loaded.document.content or "").strip():
        raise DocumentError(f"{name}: nothing to index (empty after extraction)")
    return loaded


def document_from_text(
    doc_id: str, text_body: str, *, title: str = "", tags: object = None, text_format: str = "markdown",
    path: str = "",
) -> LoadedDocument:
    """A document from a text body (``PUT /documents/{id}``): Markdown (front matter read) or plain text.

    Args:
        doc_id: The document id.
        text_body: The text.
        title: The title; taken from the front matter, the first heading or the id when empty.
        tags: Tags; the front matter's when None.
        text_format: ``markdown`` or ``text``.
        path: Where it came from (``api/<doc_id>`` by default).

    Raises:
        DocumentError: Bad front matter, or nothing to index.
    """
    path = path or f"api/{doc_id}"
    try:
        if text_format == "text":
            loaded = text.load_plain_text(text_body, path, doc_id, title=title, tags=tags)
        else:
            loaded = markdown.load_markdown_text(text_body, path, doc_id, tags=tags)
    except ValueError as exc:
        raise DocumentError(f"{doc_id}: {exc}") from exc
    if title:
        loaded.document.meta["title"] = title.strip()
    if not (loaded.document.content or "").strip():
        raise DocumentError(f"{doc_id}: nothing to index (the text is empty after cleaning)")
    return loaded


def with_tags(loaded: LoadedDocument, tags: object) -> LoadedDocument:
    """The loaded document with its tags replaced (when ``tags`` is not None)."""
    if tags is not None:
        loaded.document.meta["tags"] = normalise_tags(tags)
    return loaded
