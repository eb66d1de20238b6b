"""Grouping of ranked chunks: the best chunk per document, with the count of its other matching chunks."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

GROUP_DEPTH = 5
"""With grouping, this many candidates per wanted result are ranked (so other chunks of a document are counted)."""


@dataclass(frozen=True)
class Grouped:
    """A document's best chunk and how many other chunks of it were among the candidates."""

    position: int
    score: float
    others: int


def group_by_document(ranked: Sequence[tuple[int, float]], doc_of: Callable[[int], str | None]) -> list[Grouped]:
    """Keep the best-ranked chunk of each document, in rank order, counting the document's other chunks.

    Args:
        ranked: ``(position, score)`` best first.
        doc_of: The document id of a position (None: unknown, left out).

    Returns:
        One entry per document, best first.
    """
    first: dict[str, tuple[int, float]] = {}
    others: Counter[str] = Counter()
    for position, score in ranked:
        doc_id = doc_of(position)
        if doc_id is None:
            continue
        if doc_id in first:
            others[doc_id] += 1
        else:
            first[doc_id] = (int(position), float(score))
    return [Grouped(position, score, others[doc_id]) for doc_id, (position, score) in first.items()]
