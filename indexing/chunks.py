"""The chunk: the unit that is embedded, indexed and returned by search."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

HEADING_SEPARATOR = " > "


@dataclass(frozen=True)
class Chunk:
    """A passage of one document, small enough for the embedding model to read whole.

    Attributes:
        id: Stable id: a hash of the document id, heading path and text (same text, same id).
        doc_id: The document's id (its path in the corpus without the suffix).
        title: The document's title.
        heading: The heading path inside the document, joined with `` > `` ('' before any heading).
        text: The passage itself.
        position: The chunk's order within its document.
        tokens: Length of ``embedding_text`` in the model's tokens, special tokens included.
        tags: The document's tags.
        source_type: The kind of file it came from: ``markdown``, ``text``, ``pdf``, ``html`` or ``notebook``.
        path: The file (or API upload name) it came from.
        url: The page's URL for HTML (canonical link or ``og:url``, else the file path); '' otherwise.
        page: The PDF page (1-based) the passage is on; None for other types.
        cell: The notebook cell (0-based) the passage is in; None for other types.
    """

    id: str
    doc_id: str
    title: str
    heading: str
    text: str
    position: int = 0
    tokens: int = 0
    tags: tuple[str, ...] = field(default_factory=tuple)
    source_type: str = ""
    path: str = ""
    url: str = ""
    page: int | None = None
    cell: int | None = None

    @property
    def embedding_text(self) -> str:
        """The text given to the embedding model: title and heading path, then the passage."""
        return embedding_text(self.title, self.heading, self.text)


def embedding_text(title: str, heading: str, text: str) -> str:
    """The text that is embedded for a passage: its context line, a blank line, then the passage."""
    context = HEADING_SEPARATOR.join(part for part in (title, heading) if part)
    return f"{context}\n\n{text}" if context else text


def chunk_id(doc_id: str, heading: str, text: str, occurrence: int = 0) -> str:
    """A stable id for a passage; ``occurrence`` tells apart identical passages of one section."""
    digest = hashlib.sha256(f"{doc_id}\x1f{heading}\x1f{text}\x1f{occurrence}".encode()).hexdigest()
    return digest[:20]
