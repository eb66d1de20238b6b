"""BM25 keyword index on ``bm25s`` (sparse scores saved as ``.npy`` and JSON, no pickle).

Beside bm25s's arrays the index keeps every text's distinct analysed terms and their counts (``terms.npy``,
``counts.npy``, ``offsets.npy``), so that a document update (:meth:`Bm25Index.splice`) analyses only the fresh texts and
recomputes document frequencies, IDF and the score matrix with array operations. A build and a splice lay out
the vocabulary the same way (terms in order of first appearance) and score with the same code, so a spliced
index equals a clean build of the same texts, array for array.

The options (``k1``, ``b``, the analyzer, RM3) are saved with the index (``bm25.json``) and read back by
:meth:`Bm25Index.load`, so an index is always searched, and spliced, with the options it was built with.
"""

from __future__ import annotations

import json
import logging
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import bm25s
import numpy as np
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass
from scipy import sparse

from indexing.backends.base import Piece, top_k
from indexing.backends.text import Analyzer
from mlsearch.errors import IndexNotBuiltError

logger = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)
TERM_FILES = ("terms.npy", "counts.npy", "offsets.npy")


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class Bm25Config:
    """BM25 options (``MLSEARCH_BM25_<OPTION>``): saturation, length normalisation, analyzer and RM3.

    RM3 (as Pyserini/Anserini offer it) takes the ``rm3_terms`` heaviest terms of the top ``rm3_docs`` results
    and searches again with them added, the original query weighing ``rm3_weight``. ``mlsearch tune`` chooses
    these options on synthetic queries; an index keeps the ones it was built with.
    """

    k1: float = Field(default=1.5, gt=0, description="Term-frequency saturation.")
    b: float = Field(default=0.75, ge=0, le=1, description="Length normalisation.")
    stemmer: Literal["english", "porter", "none"] = Field(
        default="english", description="Snowball english (Porter 2), the original porter, or none.")
    stop_words: Literal["english", "none"] = Field(
        default="english", description="Remove scikit-learn's English stop words, or none.")
    rm3_terms: int = Field(default=0, ge=0, description="RM3 expansion terms (0: RM3 off).")
    rm3_docs: int = Field(default=10, ge=1, description="RM3 feedback texts.")
    rm3_weight: float = Field(default=0.5, ge=0, le=1, description="RM3: the original query's weight.")


SCORE_BLOCK = 65_536
"""Texts whose (text, term) pairs are scored at once when an index is built or spliced."""


def lucene_idf(texts: int, frequencies: np.ndarray) -> np.ndarray:
    """Lucene's BM25 IDF of terms held by ``frequencies`` of ``texts`` texts (a term in no text scores highest)."""
    return np.log(1 + (texts - frequencies + 0.5) / (frequencies + 0.5))


def lucene_term_scores(
    idf: np.ndarray, counts: np.ndarray, lengths: np.ndarray | float, mean_length: float, k1: float, b: float
) -> np.ndarray:
    """Lucene's BM25 score of (text, term) pairs: each term's ``idf`` (float32), its ``counts`` in the text, the
    text's analysed ``lengths`` (one per pair, or one for all); bm25s's arithmetic (float64, stored as float32)."""
    norm = k1 * ((1 - b) + b * np.asarray(lengths, np.float64) / mean_length)
    tf = counts.astype(np.float32).astype(np.float64)
    return (idf.astype(np.float64) * (tf / (norm + tf))).astype(np.float32)


class Bm25Index:
    """Okapi BM25 (Lucene's) over analysed terms, with optional RM3 query expansion; everything from its config."""

    name: ClassVar[str] = "bm25"
    config_type: ClassVar[type[Bm25Config]] = Bm25Config

    def __init__(self, config: Bm25Config) -> None:
        self.config = config
        self.analyzer = Analyzer(config.stemmer, config.stop_words)
        self._by_document: Any = None  # CSR copy of the score matrix: RM3 on an index saved without its terms
        self._term_names: list[str] = []
        self._mean_length: float | None = None  # mean analysed length of a text (RM3 from stored terms)
        self._retriever: bm25s.BM25 | None = None
        self._vocabulary: dict[str, int] = {}
        self._count = 0
        self._terms_of = np.zeros(0, np.int32)  # each text's distinct term ids in order of first appearance, ...
        self._counts = np.zeros(0, np.int32)  # ... how often each occurs in it, ...
        self._offsets = np.zeros(1, np.int64)  # ... and text i's pairs: [_offsets[i], _offsets[i + 1])
        self._has_terms = True

    @property
    def k1(self) -> float:
        """Term-frequency saturation."""
        return self.config.k1

    @property
    def b(self) -> float:
        """Length normalisation."""
        return self.config.b

    def _terms(self, text: str) -> list[str]:
        """The analysed terms of a text (builds, splices and queries all go through it)."""
        return self.analyzer(text)

    def _count_terms(self, text: str, vocabulary: dict[str, int]) -> tuple[list[int], list[int]]:
        """A text's distinct term ids (new terms join ``vocabulary``) in order of first appearance, and counts."""
        counted = Counter(self._terms(text))
        return [vocabulary.setdefault(t, len(vocabulary)) for t in counted], list(counted.values())

    def build(self, texts: Sequence[str]) -> None:
        """Tokenise and index the texts."""
        vocabulary: dict[str, int] = {}
        terms, counts = array("i"), array("i")  # compact int arrays, not lists of strings: 1M chunks fit
        offsets = array("q", [0])
        for text in texts:  # streamed when ``texts`` reads from the chunk store
            ids, times = self._count_terms(text, vocabulary)
            terms.extend(ids)
            counts.extend(times)
            offsets.append(len(terms))
        self._index(np.frombuffer(terms, np.int32), np.frombuffer(counts, np.int32),
                    np.frombuffer(offsets, np.int64), list(vocabulary))

    def splice(self, pieces: Sequence[Piece], fresh: Sequence[str]) -> None:
        """Become the index of kept runs of this index's texts and ``fresh`` texts, analysing only the fresh.

        Raises:
            ValueError: The index was saved without its terms (built before they were kept); build it instead.
        """
        if not self._has_terms:
            raise ValueError("this BM25 index has no stored terms to splice; build it from the texts")
        vocabulary = dict(self._vocabulary)
        terms: list[np.ndarray] = []
        counts: list[np.ndarray] = []
        sizes: list[np.ndarray] = []
        texts = iter(fresh)
        for piece in pieces:
            if piece.start is None:
                for _ in range(piece.count):
                    ids, times = self._count_terms(next(texts), vocabulary)
                    terms.append(np.array(ids, np.int32))
                    counts.append(np.array(times, np.int32))
                    sizes.append(np.array([len(ids)], np.int64))
            else:
                bounds = np.asarray(self._offsets[piece.start : piece.start + piece.count + 1])
                terms.append(self._terms_of[bounds[0] : bounds[-1]])
                counts.append(self._counts[bounds[0] : bounds[-1]])
                sizes.append(np.diff(bounds))
        joined = np.concatenate(terms) if terms else np.zeros(0, np.int32)
        offsets = np.concatenate([[0], np.cumsum(np.concatenate(sizes) if sizes else [])]).astype(np.int64)
        first = np.full(len(vocabulary), len(joined), np.int64)
        np.minimum.at(first, joined, np.arange(len(joined)))
        present = np.flatnonzero(first < len(joined))
        order = present[np.argsort(first[present], kind="stable")]  # terms in order of first appearance
        renumber = np.full(len(vocabulary), -1, np.int32)
        renumber[order] = np.arange(len(order), dtype=np.int32)
        names = list(vocabulary)
        self._index(renumber[joined], np.concatenate(counts) if counts else np.zeros(0, np.int32), offsets,
                    [names[i] for i in order])

    def _index(self, terms: np.ndarray, counts: np.ndarray, offsets: np.ndarray, names: list[str]) -> None:
        """Score every (text, term) pair with Lucene's BM25 and hand bm25s the matrix, term-major (CSC).

        ``terms`` hold ids into ``names`` (each name occurs; ids numbered by first appearance, as a build
        numbers them), ``counts`` their counts, ``offsets`` each text's pairs. bm25s's empty token ``""`` is
        appended last. The arithmetic is bm25s's own (float64, stored as float32), for all pairs at once.
        """
        self._retriever = None  # the previous matrix, if any, is not held while the new one is made
        self._terms_of, self._counts, self._offsets, self._has_terms = terms, counts, offsets, True
        self._count = len(offsets) - 1
        vocabulary = {term: i for i, term in enumerate(names)}
        vocabulary.setdefault("", len(vocabulary))
        size = len(vocabulary)
        if self._count:
            totals = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
            lengths = totals[offsets[1:]] - totals[offsets[:-1]]
            del totals
            frequencies = np.bincount(terms, minlength=size)
            idf = np.zeros(size, np.float32)
            seen = frequencies > 0
            idf[seen] = lucene_idf(self._count, frequencies[seen])
            scores = self._pair_scores(idf, terms, counts, offsets, lengths)
            matrix = sparse.csr_matrix((scores, terms, offsets), shape=(self._count, size)).tocsc()
            del scores
            data, indices = matrix.data, matrix.indices.astype(np.int32, copy=False)
            indptr = matrix.indptr.astype(np.int64, copy=False)
            del matrix
        else:
            data, indices, indptr = np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(size + 1, np.int64)
        retriever = bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
        retriever.scores = {"data": data, "indices": indices, "indptr": indptr, "num_docs": self._count}
        retriever.vocab_dict = vocabulary
        retriever.unique_token_ids_set = set(vocabulary.values())
        retriever.nonoccurrence_array = None
        self._retriever = retriever
        self._vocabulary = vocabulary
        self._by_document = None
        self._term_names = []
        self._mean_length = float(np.sum(counts, dtype=np.int64)) / self._count if self._count else None

    def _pair_scores(
        self, idf: np.ndarray, terms: np.ndarray, counts: np.ndarray, offsets: np.ndarray, lengths: np.ndarray
    ) -> np.ndarray:
        """Every (text, term) pair's score, ``SCORE_BLOCK`` texts at a time: the float64 arithmetic of all pairs at
        once held eight copies of them (about 2 GB for the 40 million pairs of a million chunks)."""
        scores = np.empty(len(terms), np.float32)
        mean = float(lengths.mean())
        for start in range(0, self._count, SCORE_BLOCK):
            stop = min(start + SCORE_BLOCK, self._count)
            low, high = int(offsets[start]), int(offsets[stop])
            texts = np.repeat(np.arange(start, stop), np.diff(offsets[start:stop + 1]))
            scores[low:high] = lucene_term_scores(idf[terms[low:high]], counts[low:high], lengths[texts], mean,
                                                  self.k1, self.b)
        return scores

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Texts that share at least one term with the query (or its RM3 expansion), best BM25 score first."""
        terms = [t for t in self._terms(query) if t in self._vocabulary]
        if self._retriever is None or not terms or self._count == 0:
            return np.zeros((1, 0), np.float32), np.zeros((1, 0), np.int64)
        scores = np.asarray(self._retriever.get_scores(terms), dtype=np.float32)
        if self.config.rm3_terms > 0:
            scores = self._expanded_scores(terms, scores)
        return top_k(scores, k, keep=scores > 0)

    def feedback_search(self, query: str, feedback: Sequence[int], k: int, terms: int = 10,
                        weight: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """BM25 with the query expanded by the heaviest terms of given feedback texts (RM3 fed from outside).

        Unlike the index's own RM3 (:attr:`Bm25Config.rm3_terms`, fed by its own top results), the feedback
        texts come from the caller, e.g. the top of a fused hybrid list, and weigh equally. The index's own RM3
        is not applied on top.

        Args:
            query: The query text.
            feedback: Positions of the feedback texts (unknown positions are ignored).
            k: How many results.
            terms: Expansion terms (0: plain BM25).
            weight: The original query terms' share of the expanded query.

        Returns:
            ``(scores, ids)`` of shape ``(1, <=k)``: texts scoring above 0, best first.
        """
        known = [t for t in self._terms(query) if t in self._vocabulary]
        if self._retriever is None or self._count == 0:
            return np.zeros((1, 0), np.float32), np.zeros((1, 0), np.int64)
        chosen = np.array(list(dict.fromkeys(int(i) for i in feedback if 0 <= int(i) < self._count)), np.int64)
        if terms > 0 and chosen.size:
            scores = self._rm3_scores(known, chosen, np.full(chosen.size, 1.0 / chosen.size), terms, weight)
        elif known:
            scores = np.asarray(self._retriever.get_scores(known), dtype=np.float32)
        else:
            return np.zeros((1, 0), np.float32), np.zeros((1, 0), np.int64)
        return top_k(scores, k, keep=scores > 0)

    def _expanded_scores(self, terms: list[str], scores: np.ndarray) -> np.ndarray:
        """RM3: re-score with the query interpolated with a relevance model of the top ``rm3_docs`` results.

        Each feedback text weighs its share of their BM25 scores (see :meth:`_rm3_scores`).
        """
        feedback = top_k(scores, self.config.rm3_docs, keep=scores > 0)[1][0]
        if len(feedback) == 0:
            return scores
        doc_weights = scores[feedback] / scores[feedback].sum()
        return self._rm3_scores(terms, feedback, doc_weights, self.config.rm3_terms, self.config.rm3_weight)

    def _rm3_scores(self, terms: list[str], feedback: np.ndarray, doc_weights: np.ndarray, count: int,
                    weight: float) -> np.ndarray:
        """Scores of the query interpolated with the relevance model of the ``feedback`` texts.

        A term's weight within a text is its share of the text's BM25 term scores, and each text weighs
        ``doc_weights``. The ``count`` heaviest terms form the expansion, which weighs ``1 - weight`` against the
        original terms' ``weight`` (as Anserini's RM3 interpolates).
        """
        assert self._retriever is not None
        model = self._relevance_model(np.asarray(feedback, np.int64), np.asarray(doc_weights, np.float64))
        model[self._vocabulary[""]] = 0.0
        heaviest = [int(i) for i in np.argsort(-model)[:count] if model[i] > 0]
        weights: dict[str, float] = {}
        for term in terms:
            weights[term] = weights.get(term, 0.0) + weight / len(terms)
        mass = float(model[heaviest].sum()) if heaviest else 0.0
        names = self._names()
        for i in heaviest:
            term = names[i]
            weights[term] = weights.get(term, 0.0) + (1 - weight) * float(model[i]) / mass
        expanded = np.zeros(self._count, np.float32)
        for term, share in weights.items():
            expanded += share * np.asarray(self._retriever.get_scores([term]), dtype=np.float32)
        return expanded

    def _relevance_model(self, feedback: np.ndarray, doc_weights: np.ndarray) -> np.ndarray:
        """Term id → weight: each feedback text's BM25 term scores as shares of their sum, times its weight.

        Read from each text's stored terms and counts (nothing but the feedback texts is touched); an index saved
        without them transposes the score matrix once instead.
        """
        model = np.zeros(len(self._vocabulary), np.float64)
        if not self._has_terms:
            rows = self._document_terms()[feedback]
            totals = np.asarray(rows.sum(axis=1)).ravel()
            return np.asarray(rows.multiply((doc_weights / np.maximum(totals, 1e-12))[:, None]).sum(axis=0)).ravel()
        for text, share in zip(feedback.tolist(), doc_weights.tolist(), strict=True):
            ids, scores = self._text_term_scores(int(text))
            total = float(scores.sum())
            if total > 0:
                np.add.at(model, ids, share * scores / total)
        return model

    def _text_term_scores(self, text: int) -> tuple[np.ndarray, np.ndarray]:
        """One text's distinct term ids and their BM25 scores, computed as :meth:`_index` scores them."""
        assert self._retriever is not None
        start, stop = int(self._offsets[text]), int(self._offsets[text + 1])
        ids = np.asarray(self._terms_of[start:stop], np.int64)
        counts = np.asarray(self._counts[start:stop])
        indptr = self._retriever.scores["indptr"]
        frequencies = np.asarray(indptr[ids + 1] - indptr[ids])
        idf = lucene_idf(self._count, frequencies).astype(np.float32)
        if self._mean_length is None:
            self._mean_length = float(np.sum(self._counts, dtype=np.int64)) / max(self._count, 1)
        scores = lucene_term_scores(idf, counts, float(counts.sum()), self._mean_length, self.k1, self.b)
        return ids, scores.astype(np.float64)

    def _names(self) -> list[str]:
        """Term id → term (built once)."""
        if len(self._term_names) != len(self._vocabulary):
            self._term_names = [""] * len(self._vocabulary)
            for term, i in self._vocabulary.items():
                self._term_names[i] = term
        return self._term_names

    def _document_terms(self) -> Any:
        """Text → term BM25 scores (CSR), transposed once from the term-major matrix (indexes without terms)."""
        if self._by_document is None:
            from scipy.sparse import csc_matrix

            assert self._retriever is not None
            matrix = self._retriever.scores
            shape = (self._count, len(self._vocabulary))
            self._by_document = csc_matrix(
                (matrix["data"], matrix["indices"], matrix["indptr"]), shape=shape
            ).tocsr()
        return self._by_document

    def best_match_share(self, query: str) -> float:
        """How much of the query the best-matching text covers, in [0, 1].

        The best text's BM25 score (without RM3) over the most any text could score: Lucene's BM25 scores a
        term at most its IDF, so the ceiling is the sum of the query terms' IDFs, where a term the corpus lacks
        counts with the IDF of a term in no text. A query that one text answers term for term scores near its
        share of saturated terms; a query whose words are rare here, scattered, or unknown scores low.

        Returns:
            The share, or NaN for a query without terms or an empty index.
        """
        terms = self._terms(query)
        if self._retriever is None or not terms or self._count == 0:
            return float("nan")
        known = [t for t in terms if t in self._vocabulary]
        best = float(np.max(self._retriever.get_scores(known))) if known else 0.0
        frequencies = np.array([self._frequency(t) for t in terms], dtype=np.float64)
        ceiling = float(np.sum(lucene_idf(self._count, frequencies)))
        return min(1.0, best / ceiling) if ceiling > 0 else float("nan")

    def _frequency(self, term: str) -> int:
        """How many texts hold the term (0 when the corpus lacks it)."""
        assert self._retriever is not None
        column = self._vocabulary.get(term)
        if column is None:
            return 0
        indptr = self._retriever.scores["indptr"]
        return int(indptr[column + 1] - indptr[column])

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
        if self._has_terms:
            for name, values in self._term_arrays().items():
                np.save(directory / name, np.ascontiguousarray(values), allow_pickle=False)
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
        index._mean_length = float(info["mean_length"]) if info.get("mean_length") else None  # else counted once
        if (directory / "params.index.json").is_file():
            retriever = bm25s.BM25.load(str(directory), allow_pickle=False, show_progress=False, mmap=True)
            index._retriever = retriever
            index._vocabulary = dict(retriever.vocab_dict)
        index._has_terms = all((directory / name).is_file() for name in TERM_FILES)
        if index._has_terms:
            index._terms_of, index._counts, index._offsets = (
                np.load(directory / name, mmap_mode="r", allow_pickle=False) for name in TERM_FILES
            )
        return index

    def _term_arrays(self) -> dict[str, np.ndarray]:
        return dict(zip(TERM_FILES, (self._terms_of, self._counts, self._offsets), strict=True))

    def describe(self) -> dict[str, Any]:
        """Every option, vocabulary size, document count and mean analysed length (RM3 reads it)."""
        return {
            **asdict(self.config),
            "variant": "lucene",
            "vocabulary": len(self._vocabulary),
            "documents": self._count,
            "mean_length": self._mean_length,
            "analyzer": self.analyzer.label(),
        }

    def __len__(self) -> int:
        return self._count
