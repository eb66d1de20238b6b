"""What drift monitoring measures about each answered query, and the named features derived from it.

Per query (logged): the embedding, the token count, the share of its terms that the keyword index does not know,
how much of the query the best keyword match covers, the top dense score and the result count. Per comparison
(derived against a reference): the distance to the reference centroid and the projection on the reference's
principal components.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mlsearch.catalog import DEFAULT_METHOD, KEYWORD_PREFERENCE, LOCAL_VECTOR_BACKEND_NAMES, VECTOR_BACKEND_NAMES

logger = logging.getLogger(__name__)

SCALAR_FEATURES: tuple[str, ...] = ("top_score", "token_count", "unknown_share", "keyword_match")
"""Features measured per query and stored in the log."""

FEATURE_DESCRIPTIONS: dict[str, str] = {
    "top_score": "top dense score (similarity of the best passage)",
    "token_count": "query length in model tokens",
    "unknown_share": "share of query terms unknown to the keyword index",
    "keyword_match": "best BM25 score as a share of the query terms' IDF (how much of the query one passage covers)",
    "centroid_distance": "cosine distance of the query embedding to the reference centroid",
}


def describe_feature(name: str) -> str:
    """A short human description of a feature name (principal components included)."""
    if name.startswith("pc") and name[2:].isdigit():
        return f"query embedding projected on the reference's principal component {name[2:]}"
    return FEATURE_DESCRIPTIONS.get(name, name)


@dataclass
class QueryObservation:
    """What the drift log keeps about one answered query.

    Attributes:
        embedding: The query embedding (float32).
        token_count: Tokens of the query for the model's tokenizer.
        unknown_share: Share of analysed query terms missing from the keyword index (NaN without one).
        top_score: Best dense score over the whole index (NaN without a vector backend).
        keyword_match: The best BM25 score as a share of the most the query could score (NaN without BM25).
        result_count: Hits returned to the caller.
        method: Search method the caller asked for.
        time: Unix time the query was answered.
        text: The query text (the log stores it only as the text mode allows).
        id: Row id in the log (None until stored).
    """

    embedding: np.ndarray
    token_count: int
    unknown_share: float
    top_score: float
    keyword_match: float = math.nan
    result_count: int = 0
    method: str = DEFAULT_METHOD
    time: float = field(default_factory=time.time)
    text: str | None = None
    id: int | None = None

    def scalar(self, name: str) -> float:
        """The value of one of :data:`SCALAR_FEATURES`."""
        return float(getattr(self, name))


class SearcherLike(Protocol):
    """The parts of :class:`search.searcher.Searcher` that feature extraction uses."""

    @property
    def encoder(self) -> Any: ...

    @property
    def built_backends(self) -> list[str]: ...

    def backend(self, name: str) -> Any: ...

    def embed_query(self, query: str) -> np.ndarray: ...

    def embed_queries(self, queries: Sequence[str]) -> Sequence[np.ndarray]: ...


def observe_query(
    searcher: SearcherLike, query: str, method: str = DEFAULT_METHOD, result_count: int = 0, when: float | None = None,
    embedding: np.ndarray | None = None,
) -> QueryObservation:
    """Measure one query against the index that answered it.

    The embedding comes from the searcher's query cache (a hit for dense and hybrid searches), the top dense
    score from a local vector backend (FAISS, else Annoy), the unknown-term share from BM25 (else LSI), the
    keyword match from BM25.

    Args:
        searcher: The searcher that answered the query.
        query: The query text.
        method: The search method the caller used.
        result_count: How many hits the caller got.
        when: Unix time of the answer (now by default).
        embedding: The query's embedding when already computed.

    Returns:
        The observation, with ``text`` set (the log decides whether to keep it).
    """
    embedding = np.asarray(searcher.embed_query(query) if embedding is None else embedding, dtype=np.float32)
    token_count = int(searcher.encoder.count_tokens([query])[0])
    return QueryObservation(
        embedding=embedding,
        token_count=token_count,
        unknown_share=unknown_share(searcher, query),
        top_score=top_dense_score(searcher, embedding),
        keyword_match=keyword_match(searcher, query),
        result_count=int(result_count),
        method=method,
        time=time.time() if when is None else when,
        text=query,
    )


def observe_queries(
    searcher: SearcherLike, queries: list[str], method: str = DEFAULT_METHOD, batch_size: int = 64
) -> list[QueryObservation]:
    """Measure many queries at once (one batched encoding), as the live log measures each."""
    embeddings = searcher.encoder.encode(queries, batch_size=batch_size, show_progress=False)
    return [observe_query(searcher, q, method=method, embedding=v) for q, v in zip(queries, embeddings,
                                                                                 strict=True)]


def unknown_share(searcher: SearcherLike, query: str) -> float:
    """1 − the keyword index's ``vocabulary_share`` of the query (BM25 preferred, then LSI; NaN without either)."""
    for name in KEYWORD_PREFERENCE:
        if name in searcher.built_backends:
            return 1.0 - float(searcher.backend(name).vocabulary_share(query))
    return math.nan


@runtime_checkable
class MatchCoverage(Protocol):
    """A keyword index that says how much of a query its best-matching text covers (BM25 does)."""

    def best_match_share(self, query: str) -> float: ...


def keyword_match(searcher: SearcherLike, query: str) -> float:
    """The keyword index's ``best_match_share`` of the query (the first built backend that offers it; NaN
    without one)."""
    for name in KEYWORD_PREFERENCE:
        if name in searcher.built_backends:
            backend = searcher.backend(name)
            if isinstance(backend, MatchCoverage):
                return float(backend.best_match_share(query))
    return math.nan


def top_dense_score(searcher: SearcherLike, embedding: np.ndarray) -> float:
    """The best inner product between the query and any chunk (NaN when the index has no vector backend)."""
    built = searcher.built_backends
    names = [n for n in LOCAL_VECTOR_BACKEND_NAMES if n in built] or [n for n in VECTOR_BACKEND_NAMES if n in built]
    for name in names:
        try:
            scores, ids = searcher.backend(name).search(embedding[None, :], 1)
        except Exception as exc:  # a remote backend may be down: the feature is then missing, not fatal
            logger.warning("top dense score from %s failed: %s", name, exc)
            continue
        if ids.size and ids[0, 0] >= 0:
            return float(scores[0, 0])
        return math.nan
    return math.nan


def principal_components(centered: np.ndarray, count: int) -> np.ndarray:
    """The top ``count`` principal directions of centred rows, shape ``(count, d)``.

    Computed from the small ``n × n`` Gram matrix (``n`` queries, far fewer than the embedding dimensions).
    """
    if count <= 0:
        return np.zeros((0, centered.shape[1]))
    values, vectors = np.linalg.eigh(centered @ centered.T)
    top = np.argsort(values)[::-1][:count]
    directions = centered.T @ vectors[:, top]
    norms = np.linalg.norm(directions, axis=0)
    norms[norms == 0] = 1.0
    return (directions / norms).T


class FeatureSpace:
    """Turns observations into named feature columns, using a reference's centroid and principal components.

    Args:
        reference_embeddings: The reference queries' embeddings, shape ``(n, d)``.
        components: How many principal components to project on (capped by ``n - 1`` and ``d``).
    """

    def __init__(self, reference_embeddings: np.ndarray, components: int = 2) -> None:
        vectors = np.asarray(reference_embeddings, dtype=np.float64)
        if vectors.ndim != 2 or vectors.shape[0] < 2:
            raise ValueError("a feature space needs at least two reference embeddings")
        self.dimension = vectors.shape[1]
        self.mean = vectors.mean(axis=0)
        norm = np.linalg.norm(self.mean)
        self.centroid = self.mean / norm if norm > 0 else self.mean
        count = max(0, min(components, vectors.shape[0] - 1, self.dimension))
        self.components = principal_components(vectors - self.mean, count)

    @property
    def names(self) -> list[str]:
        """Feature names, in report order."""
        return [*SCALAR_FEATURES, "centroid_distance", *(f"pc{i + 1}" for i in range(len(self.components)))]

    def transform(self, observations: list[QueryObservation]) -> dict[str, np.ndarray]:
        """Feature columns (one value per observation) keyed by :attr:`names`."""
        columns: dict[str, np.ndarray] = {
            name: np.array([o.scalar(name) for o in observations], dtype=np.float64) for name in SCALAR_FEATURES
        }
        if observations:
            vectors = np.stack([np.asarray(o.embedding, dtype=np.float64) for o in observations])
        else:
            vectors = np.zeros((0, self.dimension))
        columns["centroid_distance"] = self.centroid_distance(vectors)
        projected = (vectors - self.mean) @ self.components.T
        for i in range(len(self.components)):
            columns[f"pc{i + 1}"] = projected[:, i]
        return columns

    def reference_columns(self, observations: list[QueryObservation], folds: int = 10) -> dict[str, np.ndarray]:
        """The reference's own feature columns, computed out of sample.

        A reference query sits closer to a centroid and spreads wider along principal components that were
        fitted on it than a new query from the same distribution would; compared with such in-sample values,
        every live window would look shifted. So each reference query's centroid distance uses the centroid
        of the others (leave-one-out), and its projections come from components fitted on the other folds.

        Args:
            observations: The reference queries this space was fitted on, in the same order.
            folds: Cross-fitting folds for the projections.
        """
        columns = self.transform(observations)
        vectors = np.stack([np.asarray(o.embedding, dtype=np.float64) for o in observations])
        n = len(vectors)
        total = vectors.sum(axis=0)
        others = total[None, :] - vectors
        norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(others, axis=1)
        norms[norms == 0] = 1.0
        columns["centroid_distance"] = 1.0 - np.sum(vectors * others, axis=1) / norms
        count = len(self.components)
        folds = min(folds, n)
        if count and n > count + 2:
            fold_of = np.arange(n) % folds
            for fold in range(folds):
                held = fold_of == fold
                rest = vectors[~held]
                mean = rest.mean(axis=0)
                components = principal_components(rest - mean, count)
                signs = np.sign(np.sum(components * self.components, axis=1))
                signs[signs == 0] = 1.0
                projected = (vectors[held] - mean) @ (components * signs[:, None]).T
                for i in range(count):
                    columns[f"pc{i + 1}"][held] = projected[:, i]
        return columns

    def centroid_distance(self, vectors: np.ndarray) -> np.ndarray:
        """Cosine distance of each row to the reference centroid."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
        norms = np.linalg.norm(vectors, axis=1)
        norms[norms == 0] = 1.0
        return 1.0 - (vectors @ self.centroid) / norms
