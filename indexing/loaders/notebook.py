"""Jupyter notebooks with ``nbformat``: Markdown cells as text, code cells fenced, outputs dropped.

Each chunk keeps the index of the cell it comes from (0-based, as ``nbformat`` counts).
"""

from __future__ import annotations

import json
import re

from indexing.loaders.base import LoadedDocument, clean_text, join_parts, make_document, title_from_path
from mlsearch.errors import DocumentError

SOURCE_TYPE = "notebook"
SUFFIXES = frozenset({".ipynb"})
_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


def sniff(head: bytes) -> bool:
    """Whether the bytes start like a notebook's JSON."""
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    return text.startswith(b"{") and (b'"cells"' in head or b'"nbformat"' in head)


def _language(notebook: object) -> str:
    metadata = getattr(notebook, "metadata", {}) or {}
    info = metadata.get("language_info") or {}
    kernel = metadata.get("kernelspec") or {}
    return str(info.get("name") or kernel.get("language") or "python").lower()


def load(data: bytes, path: str, doc_id: str) -> LoadedDocument:
    """Read the notebook's cells.

    Raises:
        DocumentError: The file is not valid JSON or not a valid notebook, or has no text.
    """
    import nbformat
    from nbformat.validator import ValidationError

    try:
        notebook = nbformat.reads(data.decode("utf-8"), as_version=4)
        nbformat.validate(notebook)
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{path}: the notebook is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise DocumentError(f"{path}: the notebook is not valid JSON ({exc})") from exc
    except ValidationError as exc:
        raise DocumentError(f"{path}: not a valid notebook ({str(exc).splitlines()[0]})") from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # nbformat's NotJSONError is a ValueError
        raise DocumentError(f"{path}: not a valid notebook ({str(exc).splitlines()[0][:200]})") from exc
    language = _language(notebook)
    parts: list[tuple[int, str]] = []
    for index, cell in enumerate(notebook.cells):
        source = str(cell.get("source", ""))
        if not source.strip():
            continue
        if cell.cell_type == "markdown":
            parts.append((index, clean_text(source, markdown=True)))
        elif cell.cell_type == "code":
            fence = "````" if "```" in source else "```"
            parts.append((index, f"{fence}{language}\n{source.rstrip()}\n{fence}"))
    content, locations = join_parts(parts)
    if not content:
        raise DocumentError(f"{path}: the notebook has no Markdown or code to index")
    heading = _HEADING.search(content)
    title = heading.group(1) if heading else title_from_path(path)
    return LoadedDocument(make_document(
        doc_id, content, title=title, path=path, text_format="markdown", source_type=SOURCE_TYPE,
        extra={"location_kind": "cell", "locations": locations},
    ))
