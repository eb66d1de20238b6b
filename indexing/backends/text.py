"""Tokenisation shared by the keyword backends (and by drift's unknown-term share).

:class:`Analyzer` is the configurable form (a Snowball stemmer by name, or none; English stop words or none);
:func:`analyze` is the default analyzer, which LSI, snippets, query filters and drift use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

TOKEN = re.compile(r"(?u)\b\w\w+\b")
STEMMERS: tuple[str, ...] = ("english", "porter", "none")
"""Snowball ``english`` (Porter 2), the original ``porter``, or no stemming."""
STOP_WORDS: tuple[str, ...] = ("english", "none")
"""scikit-learn's English list (318 words), or none."""


@lru_cache(maxsize=4)
def _stemmer(algorithm: str) -> Any:
    try:
        import Stemmer
    except ImportError:  # pragma: no cover - PyStemmer is a core dependency
        return None
    return Stemmer.Stemmer(algorithm)


@dataclass(frozen=True)
class Analyzer:
    """Lower-case words of two or more characters, stop words removed, then stemmed.

    Attributes:
        stemmer: One of :data:`STEMMERS`.
        stop_words: One of :data:`STOP_WORDS`.

    Raises:
        ValueError: An unknown stemmer or stop-word list.
    """

    stemmer: Literal["english", "porter", "none"] = "english"
    stop_words: Literal["english", "none"] = "english"

    def __post_init__(self) -> None:
        if self.stemmer not in STEMMERS:
            raise ValueError(f"unknown stemmer {self.stemmer!r}; valid: {', '.join(STEMMERS)}")
        if self.stop_words not in STOP_WORDS:
            raise ValueError(f"unknown stop-word list {self.stop_words!r}; valid: {', '.join(STOP_WORDS)}")

    def __call__(self, text: str) -> list[str]:
        """The text's terms, in order."""
        words = TOKEN.findall(text.lower())
        if self.stop_words == "english":
            words = [w for w in words if w not in ENGLISH_STOP_WORDS]
        stemmer = _stemmer(self.stemmer) if self.stemmer != "none" else None
        return stemmer.stemWords(words) if stemmer else words

    def label(self) -> str:
        """A short description, such as ``english stop words, english stemming``."""
        stop = "no stop words" if self.stop_words == "none" else f"{self.stop_words} stop words"
        stem = "no stemming" if self.stemmer == "none" else f"{self.stemmer} stemming"
        return f"{stop}, {stem}"


DEFAULT_ANALYZER = Analyzer()


def analyze(text: str) -> list[str]:
    """Lower-case words of two or more characters, English stop words removed, Snowball-stemmed."""
    return DEFAULT_ANALYZER(text)
