"""Which chunks a search may return: tags, document ids, source types and a path prefix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ChunkFilter:
    """Restrictions on the chunks a search returns; a chunk must pass every one that is set.

    Attributes:
        tags: Keep chunks carrying any of these tags (lower-cased).
        doc_ids: Keep chunks of these documents.
        source_types: Keep chunks from these kinds of file (``markdown``, ``text``, ``pdf``, ``html``, ``notebook``).
        path_prefix: Keep chunks whose file path starts with this.
    """

    tags: tuple[str, ...] = ()
    doc_ids: tuple[str, ...] = ()
    source_types: tuple[str, ...] = ()
    path_prefix: str = ""

    @classmethod
    def of(
        cls, tags: Sequence[str] | None = None, doc_ids: Sequence[str] | None = None,
        source_types: Sequence[str] | None = None, path_prefix: str | None = None,
    ) -> ChunkFilter:
        """A filter from optional lists (duplicates and blanks dropped, tags and source types lower-cased)."""
        return cls(
            tags=tuple(sorted({t.strip().lower() for t in tags or () if t.strip()})),
            doc_ids=tuple(sorted({d for d in doc_ids or () if d})),
            source_types=tuple(sorted({s.strip().lower() for s in source_types or () if s.strip()})),
            path_prefix=path_prefix or "",
        )

    @property
    def is_empty(self) -> bool:
        """Whether it lets every chunk through."""
        return not (self.tags or self.doc_ids or self.source_types or self.path_prefix)


def as_filter(value: ChunkFilter | Sequence[str] | None) -> ChunkFilter:
    """A :class:`ChunkFilter` from a filter, a list of tags (the older form), or None."""
    if value is None:
        return ChunkFilter()
    if isinstance(value, ChunkFilter):
        return value
    return ChunkFilter.of(tags=list(value))
