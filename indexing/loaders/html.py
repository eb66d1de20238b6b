"""HTML pages with ``trafilatura``: the main text as Markdown (headings kept), navigation and scripts dropped.

The page's URL comes from ``<link rel="canonical">`` or ``og:url`` when it has one, else it is the file path.
"""

from __future__ import annotations

import re

from indexing.loaders.base import LoadedDocument, clean_text, make_document, title_from_path
from mlsearch.errors import DocumentError

SOURCE_TYPE = "html"
SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
_HTML_START = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body|<\?xml[^>]*>\s*<html)", re.IGNORECASE)


def sniff(head: bytes) -> bool:
    """Whether the bytes start like an HTML page."""
    return bool(_HTML_START.match(head.lstrip(b"\xef\xbb\xbf")))


def load(data: bytes, path: str, doc_id: str) -> LoadedDocument:
    """Extract the main text, title and URL.

    Raises:
        DocumentError: Nothing could be extracted (no main text).
    """
    import trafilatura

    html = data.decode("utf-8", errors="replace")
    markdown = trafilatura.extract(
        html, output_format="markdown", include_formatting=True, include_tables=True, include_comments=False,
        favor_recall=True,
    )
    content = clean_text(markdown or "", markdown=True)
    if not content:
        raise DocumentError(f"{path}: no main text could be extracted from the HTML page")
    metadata = trafilatura.extract_metadata(html)
    title = (metadata.title if metadata is not None else None) or title_from_path(path)
    url = (metadata.url if metadata is not None else None) or path
    return LoadedDocument(make_document(
        doc_id, content, title=str(title), path=path, text_format="markdown", source_type=SOURCE_TYPE,
        extra={"url": str(url)},
    ))
