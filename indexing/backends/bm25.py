"""BM25 keyword index on ``bm25s`` (sparse scores saved as ``.npy`` and JSON, no pickle)."""

from __future__ import annotations

import json
import logging
from array import array
from collections.abc import Sequence
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Self

import bm25s
import numpy as np

from indexing.backends.base import top_k
from indexing.backends.configs import Bm25Config
from indexing.backends.text import Analyzer
from mlsearch.errors import IndexNotBuiltError

logger = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)


class Bm25Index:
    """Okapi BM25 over analysed terms, with optional RM3 query expansion; everything from its config.

    The options are saved with the index (``bm25.json``) and read back by :meth:`load`, so an index is always
    searched, and updated, with the analyzer and parameters it was built with.
    """

    name: ClassVar[str] = "bm25"

    def __init__(self, config: Bm25Config) -> None:
        self.config = config
        self.analyzer = Analyzer(config.stemmer, config.stop_words)
        self._retriever: bm25s.BM25 | None = None
        self._vocabulary: dict[str, int] = {}
        self._terms: list[str] = []
        self._by_document: Any = None  # CSR copy of the score matrix, made on the first RM3 query
        self._count = 0

    @property
    def k1(self) -> float:
        """Term-frequency saturation."""
        return self.config.k1

    @property
    def b(self) -> float:
        """Length normalisation."""
        return self.config.b

    def build(self, texts: Sequence[str]) -> None:
        """Tokenise and index the texts."""
        vocabulary: dict[str, int] = {}
        corpus_ids = []  # compact int arrays, not lists of strings: 1M chunks fit in a few hundred MB
        for text in texts:  # streamed when ``texts`` reads from the chunk store
            corpus_ids.append(array("i", [vocabulary.setdefault(t, len(vocabulary)) for t in self.analyzer(text)]))
        vocabulary.setdefault("", len(vocabulary))  # bm25s's empty token, as when it builds the vocabulary
        self._count = len(corpus_ids)
        retriever = bm25s.BM25(k1=self.k1, b=self.b, method=self.config.variant)
        retriever.index((corpus_ids, vocabulary), show_progress=False)
        self._use(retriever)

    def _use(self, retriever: bm25s.BM25) -> None:
        self._retriever = retriever
        self._vocabulary = dict(retriever.vocab_dict)
        self._by_document = None

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Texts that share at least one term with the query (or its RM3 expansion), best BM25 score first."""
        terms = [t for t in self.analyzer(query) if t in self._vocabulary]
        if self._retriever is None or not terms or self._count == 0:
            return np.zeros((1, 0), np.float32), np.zeros((1, 0), np.int64)
        scores = np.asarray(self._retriever.get_scores(terms), dtype=np.float32)
        if self.config.rm3_terms > 0:
            scores = self._expanded_scores(terms, scores)
        return top_k(scores, k, keep=scores > 0)

    def _expanded_scores(self, terms: list[str], scores: np.ndarray) -> np.ndarray:
        """RM3: re-score with the query interpolated with a relevance model of the top ``rm3_docs`` results.

        Each feedback text weighs its share of their BM25 scores; a term's weight within a text is its share of
        the text's BM25 term scores. The ``rm3_terms`` heaviest terms form the expansion, which weighs
        ``1 - rm3_weight`` against the original terms' ``rm3_weight``.
        """
        assert self._retriever is not None
        feedback = top_k(scores, self.config.rm3_docs, keep=scores > 0)[1][0]
        if len(feedback) == 0:
            return scores
        rows = self._document_terms()[feedback]
        doc_weights = scores[feedback] / scores[feedback].sum()
        totals = np.asarray(rows.sum(axis=1)).ravel()
        shares = rows.multiply((doc_weights / np.maximum(totals, 1e-12))[:, None]).tocsr()
        model = np.asarray(shares.sum(axis=0)).ravel()
        model[self._vocabulary[""]] = 0.0
        heaviest = [int(i) for i in np.argsort(-model)[: self.config.rm3_terms] if model[i] > 0]
        weights: dict[str, float] = {}
        for term in terms:
            weights[term] = weights.get(term, 0.0) + self.config.rm3_weight / len(terms)
        mass = float(model[heaviest].sum()) if heaviest else 0.0
        for i in heaviest:
            term = self._terms[i]
            weights[term] = weights.get(term, 0.0) + (1 - self.config.rm3_weight) * float(model[i]) / mass
        expanded = np.zeros_like(scores)
        for term, weight in weights.items():
            expanded += weight * np.asarray(self._retriever.get_scores([term]), dtype=np.float32)
        return expanded

    def _document_terms(self) -> Any:
        """Text → term BM25 scores (CSR), transposed once from bm25s's term-major matrix."""
        if self._by_document is None:
            from scipy.sparse import csc_matrix

            assert self._retriever is not None
            matrix = self._retriever.scores
            shape = (self._count, len(self._vocabulary))
            self._by_document = csc_matrix(
                (matrix["data"], matrix["indices"], matrix["indptr"]), shape=shape
            ).tocsr()
            self._terms = [""] * len(self._vocabulary)
            for term, i in self._vocabulary.items():
                self._terms[i] = term
        return self._by_document

    def vocabulary_share(self, query: str) -> float:
        """Share of the query's analysed terms that occur in the corpus."""
        terms = self.analyzer(query)
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
        saved = {f.name: info[f.name] for f in fields(Bm25Config) if f.name in info}  # older indexes: some
        index = cls(replace(config, **saved))
        index._count = int(info["documents"])
        if (directory / "params.index.json").is_file():
            index._use(bm25s.BM25.load(str(directory), allow_pickle=False, show_progress=False, mmap=True))
        return index

    def describe(self) -> dict[str, Any]:
        """Every option, vocabulary size and document count."""
        return {
            **asdict(self.config),
            "vocabulary": len(self._vocabulary),
            "documents": self._count,
            "analyzer": self.analyzer.label(),
        }

    def __len__(self) -> int:
        return self._count
