"""The document: one file's (or one upload's) text and metadata, as a loader returns it and the chunker reads it.

It was Haystack's ``Document``, of which the project used only these three fields; importing Haystack cost a
CLI command about 4 s (its pipeline modules, and torch through them), so the type is ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Document:
    """A loaded document.

    Attributes:
        id: The document id (its path in the corpus without the suffix, or the id given to the API).
        content: Its text.
        meta: Its metadata: ``doc_id``, ``title``, ``tags``, ``path``, ``format``, ``source_type`` and what the
            loader adds (see :mod:`indexing.loaders.base`).
    """

    id: str
    content: str
    meta: dict[str, Any] = field(default_factory=dict)
