"""BM25 keyword index on ``bm25s`` (sparse scores saved as ``.npy`` and JSON, no pickle)."""

from __future__ import annotations

import json
import logging
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import bm25s
import numpy as np
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

from indexing.backends.base import top_k
from indexing.backends.text import analyze
from mlsearch.errors import IndexNotBuiltError

logger = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Bm25Config:
    """BM25 options (``MLSEARCH_BM25_<OPTION>``): term-frequency saturation and length normalisation."""

    k1: float = Field(default=1.5, gt=0, description="Term-frequency saturation.")
    b: float = Field(default=0.75, ge=0, le=1, description="Length normalisation.")


class Bm25Index:
    """Okapi BM25 (``k1``, ``b`` from its config) over stemmed, stop-worded terms."""

    name: ClassVar[str] = "bm25"
    config_type: ClassVar[type[Bm25Config]] = Bm25Config

    def __init__(self, config: Bm25Config) -> None:
        self.k1 = config.k1
        self.b = config.b
        self._retriever: bm25s.BM25 | None = None
        self._vocabulary: dict[str, int] = {}
        self._count = 0

    def build(self, texts: Sequence[str]) -> None:
        """Tokenise and index the texts."""
        vocabulary: dict[str, int] = {}
        corpus_ids = []  # compact int arrays, not lists of strings: 1M chunks fit in a few hundred MB
        for text in texts:  # streamed when ``texts`` reads from the chunk store
            corpus_ids.append(array("i", [vocabulary.setdefault(t, len(vocabulary)) for t in analyze(text)]))
        vocabulary.setdefault("", len(vocabulary))  # bm25s's empty token, as when it builds the vocabulary
        self._count = len(corpus_ids)
        retriever = bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
        retriever.index((corpus_ids, vocabulary), show_progress=False)
        self._retriever = retriever
        self._vocabulary = dict(retriever.vocab_dict)

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Texts that share at least one term with the query, best BM25 score first."""
        terms = [t for t in analyze(query) if t in self._vocabulary]
        if self._retriever is None or not terms or self._count == 0:
            return np.zeros((1, 0), np.float32), np.zeros((1, 0), np.int64)
        scores = np.asarray(self._retriever.get_scores(terms), dtype=np.float32)
        return top_k(scores, k, keep=scores > 0)

    def vocabulary_share(self, query: str) -> float:
        """Share of the query's analysed terms that occur in the corpus."""
        terms = analyze(query)
        if not terms:
            return 1.0
        return sum(t in self._vocabulary for t in terms) / len(terms)

    def save(self, directory: Path) -> None:
        """Write the bm25s arrays and vocabulary (``allow_pickle=False``)."""
        directory.mkdir(parents=True, exist_ok=True)
        if self._retriever is not None:
            self._retriever.save(str(directory), allow_pickle=False, show_progress=False)
        (directory / "bm25.json").write_text(json.dumps(self.describe()))

    @classmethod
    def load(cls, directory: Path, config: Bm25Config) -> Self:
        """Read the arrays back with pickle disabled."""
        if not (directory / "bm25.json").is_file():
            raise IndexNotBuiltError(f"no BM25 index in {directory}")
        info = json.loads((directory / "bm25.json").read_text())
        index = cls(config)
        index.k1, index.b, index._count = float(info["k1"]), float(info["b"]), int(info["documents"])
        if (directory / "params.index.json").is_file():
            retriever = bm25s.BM25.load(str(directory), allow_pickle=False, show_progress=False, mmap=True)
            index._retriever = retriever
            index._vocabulary = dict(retriever.vocab_dict)
        return index

    def describe(self) -> dict[str, Any]:
        """Parameters, vocabulary size and document count."""
        return {
            "k1": self.k1,
            "b": self.b,
            "variant": "lucene",
            "vocabulary": len(self._vocabulary),
            "documents": self._count,
            "analyzer": "english stop words, snowball stemming",
        }

    def __len__(self) -> int:
        return self._count
