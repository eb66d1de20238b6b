"""Snippets: the part of a passage around the query's terms."""

from __future__ import annotations

import re
from functools import lru_cache

from indexing.backends.text import analyze

_WORD = re.compile(r"\w+", re.UNICODE)


@lru_cache(maxsize=1024)
def query_terms(query: str) -> frozenset[str]:
    """The query's analysed (stemmed, stop-worded) terms (cached: each hit of a search asks again)."""
    return frozenset(analyze(query))


@lru_cache(maxsize=65_536)
def word_terms(word: str) -> frozenset[str]:
    """The analysed terms of one word (cached: a passage's words repeat across queries and passages)."""
    return frozenset(analyze(word))


@lru_cache(maxsize=1024)
def _passage(text: str) -> tuple[str, dict[str, tuple[str, ...]]]:
    """The passage with its white space collapsed, and for each analysed term the distinct words that carry it.

    Cached per passage text: the hits of one index recur across queries, and this was most of a snippet's cost.
    """
    flat = " ".join(text.split())
    by_term: dict[str, list[str]] = {}
    for word in set(_WORD.findall(flat)):
        for term in word_terms(word):
            by_term.setdefault(term, []).append(word)
    return flat, {term: tuple(words) for term, words in by_term.items()}


def _term_starts(flat: str, terms: frozenset[str], by_term: dict[str, tuple[str, ...]]) -> list[int]:
    """Where the words of ``flat`` that carry a query term start.

    Only the few words that carry a query term (``by_term``, from :func:`_passage`) are searched for, with
    ``str.find`` and a word-boundary check: a Python loop over every word of every hit cost more than the
    rest of a search.
    """
    matching = {word for term in terms for word in by_term.get(term, ())}
    starts = []
    for word in matching:
        at = flat.find(word)
        while at >= 0:
            end = at + len(word)
            if (at == 0 or not _is_word_char(flat[at - 1])) and (end == len(flat) or not _is_word_char(flat[end])):
                starts.append(at)
            at = flat.find(word, end)
    return sorted(starts)


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def make_snippet(text: str, query: str, width: int = 240) -> str:
    """The window of about ``width`` characters of ``text`` that holds the most query terms.

    Words are compared after the same analysis as the keyword indexes (so "optimizers" matches
    "optimizer"). The window starts and ends on word boundaries, with an ellipsis where text was cut.

    Args:
        text: The passage.
        query: The query.
        width: Target snippet length in characters.

    Returns:
        The snippet (the passage's start when no term occurs).
    """
    flat, by_term = _passage(text)
    if len(flat) <= width:
        return flat
    hits = _term_starts(flat, query_terms(query), by_term)
    if not hits:
        start = 0
    else:
        best_start, best_count, last = hits[0], 0, 0
        for i, begin in enumerate(hits):  # hits are sorted: the window [begin, begin + width) ends at ``last``
            last = max(last, i)
            while last < len(hits) and hits[last] < begin + width:
                last += 1
            if last - i > best_count:
                best_start, best_count = begin, last - i
        start = max(0, best_start - width // 4)
    end = min(len(flat), start + width)
    start = max(0, min(start, end - width))
    if start > 0:
        space = flat.find(" ", start)
        start = space + 1 if 0 <= space < start + 30 else start
    if end < len(flat):
        space = flat.rfind(" ", start, end)
        end = space if space > start + width // 2 else end
    return ("…" if start > 0 else "") + flat[start:end].strip() + ("…" if end < len(flat) else "")
