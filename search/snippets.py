"""Snippets: the part of a passage around the query's terms."""

from __future__ import annotations

import re

from indexing.backends.text import analyze

_WORD = re.compile(r"\w+", re.UNICODE)


def query_terms(query: str) -> set[str]:
    """The query's analysed (stemmed, stop-worded) terms."""
    return set(analyze(query))


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
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    terms = query_terms(query)
    words = list(_WORD.finditer(flat))
    hits = [m.start() for m in words if terms and set(analyze(m.group())) & terms]
    if not hits:
        start = 0
    else:
        best_start, best_count = hits[0], 0
        for i, begin in enumerate(hits):
            count = sum(1 for h in hits[i:] if h < begin + width)
            if count > best_count:
                best_start, best_count = begin, count
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
