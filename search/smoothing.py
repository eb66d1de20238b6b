"""Score smoothing over the chunks' nearest-neighbour graph (score regularisation, as in Diaz 2005).

A chunk's keyword score is mixed with the mean score of its ``k`` nearest chunks by embedding:
``(1 − w) · s(c) + w · mean(s(n) for n in N(c))``. Chunks about the same thing lend each other the query terms
that one of them lacks, so a passage that says the same in other words rises, and a chunk that matches a query
word by accident among unrelated neighbours sinks. It needs no labels; measured in the README ("Keyword scores
smoothed over similar chunks").

The graph is exact (inner product of the stored, normalised embeddings, self excluded), computed once per index
version when a search first needs it; :func:`smooth` works on a ranked list, so chunks outside it count as 0.
"""

from __future__ import annotations

import logging

import numpy as np

from indexing.backends.base import Ranked

logger = logging.getLogger(__name__)

SMOOTHING_DEPTH = 300
"""Chunks of the raw ranking that are smoothed (a caller asking for fewer gets the top of these)."""
GRAPH_BATCH = 1024
"""Chunks whose neighbours are searched at once while the graph is computed."""


def neighbour_graph(vectors: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` nearest other rows by inner product, nearest first: an ``(n, min(k, n − 1))`` int32 array.

    Args:
        vectors: One embedding per chunk, by position.
        k: Neighbours per chunk.
    """
    import faiss

    data = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(data)
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros((n, 0), np.int32)
    index = faiss.IndexFlatIP(data.shape[1])
    index.add(data)
    out = np.empty((n, k), np.int32)
    for start in range(0, n, GRAPH_BATCH):
        batch = data[start:start + GRAPH_BATCH]
        _, found = index.search(batch, k + 1)
        for row, ids in enumerate(found):
            own = start + row
            others = [int(i) for i in ids if i != own and i >= 0][:k]
            out[own] = others + [own] * (k - len(others))  # duplicates of a vector may hide it: pad with itself
    return out


def smooth(ranked: Ranked, neighbours: np.ndarray, weight: float) -> Ranked:
    """The ranked ``(position, score)`` list with each score mixed with its neighbours' mean score, re-ranked.

    Neighbours outside the list score 0. ``weight`` is the neighbours' share (0 returns the list unchanged).
    """
    if weight <= 0 or not ranked or neighbours.shape[1] == 0:
        return list(ranked)
    positions = np.fromiter((p for p, _ in ranked), np.int64, len(ranked))
    scores = np.fromiter((s for _, s in ranked), np.float64, len(ranked))
    by_position = np.argsort(positions, kind="stable")
    sorted_positions = positions[by_position]
    around = neighbours[positions].astype(np.int64)  # (m, k): each listed chunk's neighbours
    slot = np.minimum(np.searchsorted(sorted_positions, around), len(positions) - 1)
    listed = sorted_positions[slot] == around
    neighbour_scores = np.where(listed, scores[by_position[slot]], 0.0)
    mixed = (1 - weight) * scores + weight * neighbour_scores.mean(axis=1)
    order = np.argsort(-mixed, kind="stable")
    return [(int(p), float(v)) for p, v in zip(positions[order].tolist(), mixed[order].tolist(), strict=True)]
