"""Latent semantic indexing: scikit-learn TF-IDF and truncated SVD, stored as arrays and JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass
from sklearn import config_context
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from indexing.backends.base import Piece, splice_rows, top_k
from indexing.backends.text import analyze
from mlsearch.errors import IndexNotBuiltError


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class LsiConfig:
    """LSI options (``MLSEARCH_LSI_<OPTION>``): SVD components and the fitting sample."""

    dimensions: int = Field(default=200, ge=2, description="SVD components.")
    fit_sample: int = Field(
        default=100_000, ge=100, description="TF-IDF and SVD are fitted on at most this many chunks (evenly spaced)."
    )


class LsiIndex:
    """TF-IDF (sublinear, stemmed, English stop words) projected on ``dimensions`` SVD components.

    Documents and queries are compared by cosine in the latent space. Saved as ``vocabulary.json``,
    ``idf.npy``, ``components.npy`` and ``documents.npy``: loading reads arrays, never pickles.

    A document update folds its texts into the fitted model (:meth:`splice`: projected with the existing
    vocabulary, IDF and components, as a query is) instead of fitting again; ``pending_refit`` counts the texts
    added or removed since the fit, and a later :meth:`build` (the update's compaction) makes the index equal to
    a clean build again.
    """

    name: ClassVar[str] = "lsi"
    config_type: ClassVar[type[LsiConfig]] = LsiConfig

    def __init__(self, config: LsiConfig) -> None:
        self.dimensions = config.dimensions
        self.fit_sample = config.fit_sample
        self._vectorizer: TfidfVectorizer | None = None
        self._components = np.zeros((0, 0), np.float32)
        self._documents = np.zeros((0, 0), np.float32)
        self._pending_refit = 0

    @staticmethod
    def _new_vectorizer() -> TfidfVectorizer:
        return TfidfVectorizer(analyzer=analyze, sublinear_tf=True, min_df=1, dtype=np.float32)

    def build(self, texts: Sequence[str]) -> None:
        """Fit TF-IDF and SVD on the texts and project them.

        Past ``fit_sample`` texts, both are fitted on an evenly spaced sample of that many and every text is
        then projected in batches, so that memory stays bounded (terms seen only outside the sample are unknown).
        """
        self._pending_refit = 0
        if len(texts) > self.fit_sample and self._build_from_sample(texts):
            return
        vectorizer = self._new_vectorizer()
        try:
            tfidf = vectorizer.fit_transform(list(texts))
        except ValueError:  # no terms at all
            self._vectorizer = None
            self._documents = np.zeros((len(texts), 0), np.float32)
            return
        rank = min(self.dimensions, tfidf.shape[0] - 1, tfidf.shape[1] - 1)
        if rank >= 1:
            svd = TruncatedSVD(n_components=rank, random_state=0, algorithm="randomized", n_iter=7)
            documents = svd.fit_transform(tfidf)
            self._components = svd.components_.astype(np.float32)
        else:  # one document or one term: the TF-IDF space itself
            documents = tfidf.toarray()
            self._components = np.eye(tfidf.shape[1], dtype=np.float32)
        self._vectorizer = vectorizer
        self._documents = normalize(documents).astype(np.float32)

    def _build_from_sample(self, texts: Sequence[str], batch: int = 8192) -> bool:
        """Fit on an even sample, project every text in batches; False when the sample has too few terms."""
        step = len(texts) / self.fit_sample
        wanted = {int(i * step) for i in range(self.fit_sample)}
        vectorizer = self._new_vectorizer()
        try:
            tfidf = vectorizer.fit_transform([text for i, text in enumerate(texts) if i in wanted])
        except ValueError:
            return False
        rank = min(self.dimensions, tfidf.shape[0] - 1, tfidf.shape[1] - 1)
        if rank < 1:
            return False
        svd = TruncatedSVD(n_components=rank, random_state=0, algorithm="randomized", n_iter=7).fit(tfidf)
        components = svd.components_.astype(np.float32)
        documents = np.empty((len(texts), rank), np.float32)
        pending: list[str] = []
        start = 0

        def project() -> None:
            nonlocal start
            latent = np.asarray(vectorizer.transform(pending) @ components.T, dtype=np.float32)
            documents[start : start + len(pending)] = normalize(latent)
            start += len(pending)
            pending.clear()

        for text in texts:  # streamed when ``texts`` reads from the chunk store
            pending.append(text)
            if len(pending) == batch:
                project()
        if pending:
            project()
        self._vectorizer, self._components, self._documents = vectorizer, components, documents
        return True

    def splice(self, pieces: Sequence[Piece], fresh: Sequence[str]) -> None:
        """Fold ``fresh`` texts into the fitted model and lay out kept and fresh rows as ``pieces`` say.

        Raises:
            ValueError: The index has no fitted model (no terms at all); build it instead.
        """
        if self._vectorizer is None:
            raise ValueError("this LSI index has no fitted model to fold texts into; build it from the texts")
        rank = self._documents.shape[1]
        rows = np.zeros((0, rank), np.float32)
        if fresh:
            with config_context(assume_finite=True):
                latent = np.asarray(self._vectorizer.transform(list(fresh)) @ self._components.T, np.float32)
            rows = normalize(latent).astype(np.float32)
        kept = sum(p.count for p in pieces if p.start is not None)
        self._pending_refit += len(fresh) + len(self._documents) - kept
        self._documents = splice_rows(np.asarray(self._documents), rows, pieces)

    def _project(self, query: str) -> np.ndarray:
        assert self._vectorizer is not None
        with config_context(assume_finite=True, skip_parameter_validation=True):  # its checks cost more than the work
            latent = np.asarray(self._vectorizer.transform([query]) @ self._components.T, dtype=np.float32)[0]
        norm = float(np.linalg.norm(latent))
        return latent / norm if norm > 0 else latent

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Cosine in the latent space; a query with no known term finds nothing."""
        if self._vectorizer is None or self.vocabulary_share(query) == 0.0 or not analyze(query):
            return np.zeros((1, 0), np.float32), np.zeros((1, 0), np.int64)
        scores = self._documents @ self._project(query)
        return top_k(scores, k)

    def vocabulary_share(self, query: str) -> float:
        """Share of the query's analysed terms present in the TF-IDF vocabulary."""
        terms = analyze(query)
        if not terms:
            return 1.0
        if self._vectorizer is None:
            return 0.0
        vocabulary = self._vectorizer.vocabulary_
        return sum(t in vocabulary for t in terms) / len(terms)

    def save(self, directory: Path) -> None:
        """Write the vocabulary as JSON and the arrays as ``.npy`` (no pickle)."""
        directory.mkdir(parents=True, exist_ok=True)
        vocabulary = {} if self._vectorizer is None else {
            term: int(i) for term, i in self._vectorizer.vocabulary_.items()
        }
        idf = np.zeros(0, np.float32) if self._vectorizer is None else self._vectorizer.idf_.astype(np.float32)
        (directory / "vocabulary.json").write_text(json.dumps(vocabulary))
        np.save(directory / "idf.npy", idf, allow_pickle=False)
        np.save(directory / "components.npy", self._components, allow_pickle=False)
        np.save(directory / "documents.npy", self._documents, allow_pickle=False)
        (directory / "lsi.json").write_text(json.dumps(self.describe()))

    @classmethod
    def load(cls, directory: Path, config: LsiConfig) -> Self:
        """Rebuild the vectorizer from the stored vocabulary and idf; arrays load with pickle off."""
        if not (directory / "lsi.json").is_file():
            raise IndexNotBuiltError(f"no LSI index in {directory}")
        info = json.loads((directory / "lsi.json").read_text())
        index = cls(config)
        index.dimensions = int(info["dimensions"])
        index._pending_refit = int(info.get("pending_refit", 0))
        vocabulary = json.loads((directory / "vocabulary.json").read_text())
        index._components = np.load(directory / "components.npy", allow_pickle=False)
        index._documents = np.load(directory / "documents.npy", mmap_mode="r", allow_pickle=False)
        if vocabulary:
            vectorizer = cls._new_vectorizer()
            vectorizer.vocabulary_ = vocabulary
            vectorizer.idf_ = np.load(directory / "idf.npy", allow_pickle=False)
            index._vectorizer = vectorizer
        return index

    def describe(self) -> dict[str, Any]:
        """Requested and actual dimensions, vocabulary size and weighting."""
        return {
            "dimensions": self.dimensions,
            "components": int(self._components.shape[0]),
            "vocabulary": 0 if self._vectorizer is None else len(self._vectorizer.vocabulary_),
            "weighting": "tfidf-sublinear, english stop words, snowball stemming",
            "documents": int(self._documents.shape[0]),
            "pending_refit": self._pending_refit,
        }

    def __len__(self) -> int:
        return int(self._documents.shape[0])
