"""PDF files with ``pypdf``: text per page, the page number kept for every chunk.

A page without a text layer (a scan) is reported in the notes and left out, never indexed empty.
"""

from __future__ import annotations

import io
import logging

from indexing.loaders.base import LoadedDocument, clean_text, join_parts, make_document, title_from_path
from mlsearch.errors import DocumentError

logger = logging.getLogger(__name__)

SOURCE_TYPE = "pdf"
SUFFIXES = frozenset({".pdf"})


def sniff(head: bytes) -> bool:
    """Whether the bytes start like a PDF."""
    return head.lstrip()[:5] == b"%PDF-"


def load(data: bytes, path: str, doc_id: str) -> LoadedDocument:
    """Extract the text of every page.

    Raises:
        DocumentError: The file is not a readable PDF, is encrypted, or has no text layer on any page.
    """
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if not sniff(data[:1024]):
        raise DocumentError(f"{path}: not a PDF file (no %PDF- header)")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(f"{path}: the PDF is encrypted (password protected); decrypt it first")
        pages = [page.extract_text() or "" for page in reader.pages]
        info = reader.metadata
        title = str(info.title) if info is not None and info.title else ""
    except DocumentError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise DocumentError(f"{path}: the PDF is corrupt or unreadable ({type(exc).__name__}: {exc})") from exc
    except NotImplementedError as exc:  # e.g. an encryption algorithm pypdf cannot handle
        raise DocumentError(f"{path}: the PDF is encrypted in a way that cannot be read ({exc})") from exc
    notes: list[str] = []
    parts: list[tuple[int, str]] = []
    for number, text in enumerate(pages, start=1):
        cleaned = clean_text(text, markdown=False)
        if cleaned:
            parts.append((number, cleaned))
        else:
            notes.append(f"page {number} has no text layer (a scanned image?); not indexed")
    if not parts:
        raise DocumentError(f"{path}: no page of the PDF has a text layer ({len(pages)} pages; scanned?)")
    content, locations = join_parts(parts)
    return LoadedDocument(
        make_document(
            doc_id, content, title=title or title_from_path(path), path=path, text_format="text",
            source_type=SOURCE_TYPE, extra={"location_kind": "page", "locations": locations},
        ),
        notes,
    )
