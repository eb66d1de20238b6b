"""Pseudo-relevance feedback for hybrid search: the first fused list's top chunks refine both of its parts.

One round, no labels, no second encode of the query:

* **dense** (Rocchio, 1971): ``q' = normalize(w · q + (1 − w) · mean(v_1 … v_n))`` where ``v_i`` are the
  stored vectors of the ``n`` feedback chunks; ``q'`` is searched again in the same vector backend.
* **BM25** (RM3, as Pyserini offers it, but fed by the fused list): the heaviest terms of the feedback chunks
  are added to the query (:meth:`indexing.backends.bm25.Bm25Index.feedback_search`).

The feedback chunks are the top ``docs`` of the first fused list (more precise at the top than either part),
and the refined lists are fused again with the same fusion, beside the first-pass lists by default
(:func:`with_first_pass`), so that feedback re-ranks rather than replaces. :class:`~mlsearch.configs.FeedbackConfig`
names one setting; ``docs = 0`` turns feedback off. :meth:`search.searcher.Searcher.retrieve` applies it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mlsearch.catalog import FUSED_METHOD
from mlsearch.configs import DEFAULT_FEEDBACK, FeedbackConfig
from search.fusion import FusionConfig

__all__ = ["FEEDBACK_VARIANTS", "FeedbackConfig", "rocchio", "with_first_pass"]

FEEDBACK_VARIANTS: dict[str, FeedbackConfig] = {
    f"{FUSED_METHOD}-prf": DEFAULT_FEEDBACK,  # the setting measured on every set (bench.prf)
    f"{FUSED_METHOD}-noprf": FeedbackConfig(),
}
"""Feedback variants that ``mlsearch eval`` can report beside ``hybrid``: the index's fusion with the fixed
feedback setting, and without feedback."""


def rocchio(query: np.ndarray, feedback: np.ndarray, query_weight: float) -> np.ndarray:
    """The query vector moved toward the centroid of the feedback vectors, renormalised to the query's length.

    Args:
        query: The query embedding, shape ``(d,)``.
        feedback: The feedback chunks' vectors, shape ``(n, d)`` (``n`` may be 0: the query comes back as is).
        query_weight: The query's weight ``w``; the centroid weighs ``1 − w``.

    Returns:
        ``normalize(w · q + (1 − w) · mean(feedback)) · |q|`` as float32.

    Example:
        >>> [round(float(x), 3) for x in rocchio(np.array([1.0, 0.0]), np.array([[0.0, 1.0]]), 0.5)]
        [0.707, 0.707]
    """
    query = np.asarray(query, np.float32).ravel()
    rows = np.asarray(feedback, np.float32).reshape(-1, query.shape[0])
    if rows.shape[0] == 0 or query_weight >= 1.0:
        return query
    moved = query_weight * query + (1.0 - query_weight) * rows.mean(axis=0)
    length = float(np.linalg.norm(moved))
    if length <= 1e-12:
        return query
    return (moved * (float(np.linalg.norm(query)) / length)).astype(np.float32)


def with_first_pass(config: FusionConfig) -> FusionConfig:
    """The fusion of the first-pass lists and the refined lists together: each method twice, same weights.

    Example:
        >>> from search.fusion import untuned_fusion
        >>> with_first_pass(untuned_fusion()).label()
        'convex-zscore dense:1 bm25:1 dense:1 bm25:1'
    """
    return replace(config, methods=config.methods * 2, weights=config.weights * 2,
                   source=f"{config.source}; first-pass and feedback lists")
