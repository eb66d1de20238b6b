"""BM25 keyword index on ``bm25s`` (sparse scores saved as ``.npy`` and JSON, no pickle).

Beside bm25s's arrays the index keeps every text's analysed terms (``tokens.npy``, term ids in text order, and
``offsets.npy``), so that a document update (:meth:`Bm25Index.splice`) analyses only the fresh texts and
recomputes document frequencies, IDF and the score matrix with array operations. A build and a splice lay out
the vocabulary the same way (terms in order of first appearance) and score with the same code, so a spliced
index equals a clean build of the same texts, array for array.
"""

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

from indexing.backends.base import Piece, top_k
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
        self._tokens = np.zeros(0, np.int32)  # every text's term ids, text after text
        self._offsets = np.zeros(1, np.int64)  # text i's terms are _tokens[_offsets[i]:_offsets[i + 1]]
        self._has_tokens = True

    @staticmethod
    def _terms(text: str) -> list[str]:
        """The analysed terms of a text (builds, splices and queries all go through it)."""
        return analyze(text)

    def build(self, texts: Sequence[str]) -> None:
        """Tokenise and index the texts."""
        vocabulary: dict[str, int] = {}
        tokens = array("i")  # one compact int array, not lists of strings: 1M chunks fit in a few hundred MB
        offsets = array("q", [0])
        for text in texts:  # streamed when ``texts`` reads from the chunk store
            tokens.extend(vocabulary.setdefault(t, len(vocabulary)) for t in self._terms(text))
            offsets.append(len(tokens))
        self._index(np.frombuffer(tokens, np.int32), np.frombuffer(offsets, np.int64), list(vocabulary))

    def splice(self, pieces: Sequence[Piece], fresh: Sequence[str]) -> None:
        """Become the index of kept runs of this index's texts and ``fresh`` texts, analysing only the fresh.

        Raises:
            ValueError: The index was saved without its terms (built before they were kept); build it instead.
        """
        if not self._has_tokens:
            raise ValueError("this BM25 index has no stored terms to splice; build it from the texts")
        vocabulary = dict(self._vocabulary)
        parts: list[np.ndarray] = []
        lengths: list[np.ndarray] = []
        texts = iter(fresh)
        for piece in pieces:
            if piece.start is None:
                for _ in range(piece.count):
                    ids = [vocabulary.setdefault(t, len(vocabulary)) for t in self._terms(next(texts))]
                    parts.append(np.array(ids, np.int32))
                    lengths.append(np.array([len(ids)], np.int64))
            else:
                bounds = self._offsets[piece.start : piece.start + piece.count + 1]
                parts.append(self._tokens[bounds[0] : bounds[-1]])
                lengths.append(np.diff(bounds))
        tokens = np.concatenate(parts) if parts else np.zeros(0, np.int32)
        offsets = np.concatenate([[0], np.cumsum(np.concatenate(lengths) if lengths else [])]).astype(np.int64)
        present, first = np.unique(tokens, return_index=True)
        order = present[np.argsort(first, kind="stable")]  # terms in order of first appearance, as a build
        renumber = np.full(len(vocabulary), -1, np.int32)
        renumber[order] = np.arange(len(order), dtype=np.int32)
        names = list(vocabulary)
        self._index(renumber[tokens], offsets, [names[i] for i in order])

    def _index(self, tokens: np.ndarray, offsets: np.ndarray, terms: list[str]) -> None:
        """Score every (text, term) pair with Lucene's BM25 and hand bm25s the matrix, term-major (CSC).

        ``tokens`` hold ids into ``terms`` (every term occurs); bm25s's empty token ``""`` is appended last.
        The arithmetic is bm25s's own, done for all pairs at once instead of text by text.
        """
        self._tokens, self._offsets, self._has_tokens = tokens, offsets, True
        self._count = len(offsets) - 1
        vocabulary = {term: i for i, term in enumerate(terms)}
        vocabulary.setdefault("", len(vocabulary))
        size = len(vocabulary)
        lengths = np.diff(offsets)
        if self._count:
            average = lengths.mean()
            pairs, counts = np.unique(np.repeat(np.arange(self._count, dtype=np.int64), lengths) * size + tokens,
                                      return_counts=True)
            docs, columns = np.divmod(pairs, size)
            frequencies = np.bincount(columns, minlength=size)
            idf = np.zeros(size, np.float32)
            seen = frequencies > 0
            idf[seen] = np.log(1 + (self._count - frequencies[seen] + 0.5) / (frequencies[seen] + 0.5))
            norm = self.k1 * ((1 - self.b) + self.b * lengths.astype(np.float64) / average)
            tf = counts.astype(np.float32).astype(np.float64)
            scores = (idf[columns].astype(np.float64) * (tf / (norm[docs] + tf))).astype(np.float32)
            by_term = np.argsort(columns, kind="stable")  # pairs are sorted by text, then term
            data, indices = scores[by_term], docs[by_term].astype(np.int32)
            indptr = np.concatenate([[0], np.cumsum(frequencies)]).astype(np.int64)
        else:
            data, indices, indptr = np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(size + 1, np.int64)
        retriever = bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
        retriever.scores = {"data": data, "indices": indices, "indptr": indptr, "num_docs": self._count}
        retriever.vocab_dict = vocabulary
        retriever.unique_token_ids_set = set(vocabulary.values())
        retriever.nonoccurrence_array = None
        self._retriever = retriever
        self._vocabulary = vocabulary

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Texts that share at least one term with the query, best BM25 score first."""
        terms = [t for t in self._terms(query) if t in self._vocabulary]
        if self._retriever is None or not terms or self._count == 0:
            return np.zeros((1, 0), np.float32), np.zeros((1, 0), np.int64)
        scores = np.asarray(self._retriever.get_scores(terms), dtype=np.float32)
        return top_k(scores, k, keep=scores > 0)

    def vocabulary_share(self, query: str) -> float:
        """Share of the query's analysed terms that occur in the corpus."""
        terms = self._terms(query)
        if not terms:
            return 1.0
        return sum(t in self._vocabulary for t in terms) / len(terms)

    def save(self, directory: Path) -> None:
        """Write the bm25s arrays and vocabulary (``allow_pickle=False``)."""
        directory.mkdir(parents=True, exist_ok=True)
        if self._retriever is not None:
            self._retriever.save(str(directory), allow_pickle=False, show_progress=False)
        if self._has_tokens:
            np.save(directory / "tokens.npy", np.ascontiguousarray(self._tokens), allow_pickle=False)
            np.save(directory / "offsets.npy", np.ascontiguousarray(self._offsets), allow_pickle=False)
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
        index._has_tokens = (directory / "tokens.npy").is_file() and (directory / "offsets.npy").is_file()
        if index._has_tokens:
            index._tokens = np.load(directory / "tokens.npy", mmap_mode="r", allow_pickle=False)
            index._offsets = np.load(directory / "offsets.npy", mmap_mode="r", allow_pickle=False)
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
