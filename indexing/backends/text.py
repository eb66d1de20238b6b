"""Tokenisation shared by the keyword backends (and by drift's unknown-term share)."""

from __future__ import annotations

import re
from functools import lru_cache

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

TOKEN = re.compile(r"(?u)\b\w\w+\b")


@lru_cache(maxsize=1)
def _stemmer():  # type: ignore[no-untyped-def]
    try:
        import Stemmer
    except ImportError:  # pragma: no cover - PyStemmer is a core dependency
        return None
    return Stemmer.Stemmer("english")


def analyze(text: str) -> list[str]:
    """Lower-case words of two or more characters, English stop words removed, Snowball-stemmed."""
    words = [w for w in TOKEN.findall(text.lower()) if w not in ENGLISH_STOP_WORDS]
    stemmer = _stemmer()
    return stemmer.stemWords(words) if stemmer else words
