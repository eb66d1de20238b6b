"""Filters over synthetic queries: duplicates, queries too short to mean anything, round-trip consistency."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from finetune.queries import SyntheticQuery
from indexing.backends.base import KeywordIndex
from indexing.backends.text import analyze

logger = logging.getLogger(__name__)

MIN_TERMS = 2
MIN_CHARS = 8


def normalized(text: str) -> str:
    """Case-folded text with punctuation dropped and whitespace collapsed (the duplicate key)."""
    return " ".join("".join(ch if ch.isalnum() else " " for ch in text.casefold()).split())


def drop_duplicates(queries: Sequence[SyntheticQuery]) -> list[SyntheticQuery]:
    """Keep the first of queries whose normalised text is the same (a repeated query has no single answer)."""
    seen: set[str] = set()
    out = []
    for query in queries:
        key = normalized(query.text)
        if key not in seen:
            seen.add(key)
            out.append(query)
    return out


def drop_short(
    queries: Sequence[SyntheticQuery], min_terms: int = MIN_TERMS, min_chars: int = MIN_CHARS
) -> list[SyntheticQuery]:
    """Drop queries with fewer than ``min_terms`` content terms (stop words removed) or ``min_chars`` characters."""
    return [q for q in queries if len(q.text.strip()) >= min_chars and len(analyze(q.text)) >= min_terms]


def round_trip(queries: Sequence[SyntheticQuery], keyword: KeywordIndex, top_n: int) -> list[SyntheticQuery]:
    """Keep queries whose source chunk the keyword index (BM25) ranks in its top ``top_n``.

    Args:
        queries: Synthetic queries; ``position`` must be the chunk's position in ``keyword``.
        keyword: A built keyword index over the same chunks.
        top_n: How deep the source chunk may rank.
    """
    if top_n < 1:
        raise ValueError(f"round-trip depth must be at least 1, got {top_n}")
    kept = []
    for query in queries:
        _, ids = keyword.search(query.text, top_n)
        if query.position in set(ids[0].tolist()):
            kept.append(query)
    logger.info("round trip (BM25 top %d) kept %d of %d queries", top_n, len(kept), len(queries))
    return kept


def apply_filters(
    queries: Sequence[SyntheticQuery], keyword: KeywordIndex | None = None, round_trip_top: int | None = None
) -> tuple[list[SyntheticQuery], dict[str, int]]:
    """Drop short queries and duplicates, then (when ``round_trip_top`` is set) inconsistent ones.

    Returns:
        The kept queries and how many each step removed.
    """
    removed: dict[str, int] = {}
    kept = drop_short(queries)
    removed["too_short"] = len(queries) - len(kept)
    before = len(kept)
    kept = drop_duplicates(kept)
    removed["duplicates"] = before - len(kept)
    if round_trip_top:
        if keyword is None:
            raise ValueError("the round-trip filter needs a keyword index")
        before = len(kept)
        kept = round_trip(kept, keyword, round_trip_top)
        removed["round_trip"] = before - len(kept)
    return kept, removed
