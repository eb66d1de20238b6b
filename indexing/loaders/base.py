"""What every loader returns, and the pieces loaders share (cleaning, tags, titles, locations).

A loader turns one file's bytes into a :class:`~indexing.document.Document` whose ``meta`` holds ``doc_id``,
``title``, ``tags``, ``path``, ``format`` (``markdown`` or ``text``: how chunking reads the content) and
``source_type`` (``markdown``, ``text``, ``pdf``, ``html``, ``notebook``). Loaders of paged or celled files
also set ``location_kind`` (``page`` or ``cell``) and ``locations``: ``[[first_line, number], ...]``, the line
of the content where each page or cell starts, so that every chunk can say where its passage is; an HTML page
sets ``url``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

from indexing.document import Document

_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|~<>])")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_FENCE = re.compile(r"^\s*(```|~~~)")
_MANY_BLANKS = re.compile(r"\n{3,}")


@dataclass
class LoadedDocument:
    """One loaded file: its document, and notes for the user (for example a PDF page with no text layer)."""

    document: Document
    notes: list[str] = field(default_factory=list)


def clean_text(text: str, markdown: bool = True) -> str:
    """Normalise a document's text without changing what it says.

    Line endings, BOM and non-breaking spaces are normalised, HTML comments dropped, trailing
    whitespace trimmed and runs of blank lines collapsed. In Markdown, backslash escapes such as
    ``train\\_test\\_split`` are undone outside fenced code, so that keyword search sees the words.

    Args:
        text: The raw text.
        markdown: Whether the text is Markdown (escapes are then undone outside code fences).

    Returns:
        The cleaned text.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    text = text.replace("\u00a0", " ").replace("\u200b", "").replace("\x00", "")
    text = _HTML_COMMENT.sub("", text)
    lines: list[str] = []
    in_fence = False
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif markdown and not in_fence:
            line = _MD_ESCAPE.sub(r"\1", line)
        lines.append(line.rstrip())
    return _MANY_BLANKS.sub("\n\n", "\n".join(lines)).strip()


def normalise_tags(raw: object) -> list[str]:
    """Tags as a sorted list of distinct lower-case strings (from a list or a comma/space separated string).

    Raises:
        ValueError: Tags are neither a list nor a string.
    """
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [t for t in re.split(r"[,\s]+", raw) if t]
    if not isinstance(raw, list | tuple):
        raise ValueError(f"tags must be a list or a string, not {type(raw).__name__}")
    return sorted({str(t).strip().lower() for t in raw if str(t).strip()})


def title_from_path(path: str) -> str:
    """A readable title from a file name: ``gradient-clipping.pdf`` → ``Gradient clipping``."""
    return PurePath(path).stem.replace("-", " ").replace("_", " ").strip().capitalize() or "Untitled"


def join_parts(parts: Sequence[tuple[int, str]]) -> tuple[str, list[list[int]]]:
    """Join numbered parts (pages, cells) into one text, and the line where each part starts.

    Args:
        parts: ``(number, cleaned text)`` in order; empty texts are left out.

    Returns:
        The content (parts separated by a blank line) and ``[[first_line, number], ...]``.
    """
    lines: list[str] = []
    locations: list[list[int]] = []
    for number, text in parts:
        if not text.strip():
            continue
        if lines:
            lines.append("")
        locations.append([len(lines), number])
        lines.extend(text.split("\n"))
    return "\n".join(lines), locations


def make_document(
    doc_id: str, content: str, *, title: str, path: str, text_format: str, source_type: str,
    tags: object = None, extra: Mapping[str, object] | None = None,
) -> Document:
    """The document every loader returns, with the metadata described in this module's docstring."""
    return Document(
        id=doc_id,
        content=content,
        meta={
            **(extra or {}),
            "doc_id": doc_id,
            "title": title.strip() or title_from_path(path),
            "tags": normalise_tags(tags),
            "path": path,
            "format": text_format,
            "source_type": source_type,
        },
    )
