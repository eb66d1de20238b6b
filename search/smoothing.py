"""Score smoothing over the chunks' nearest-neighbour graph (score regularisation, as in Diaz 2005).

A chunk's keyword score is mixed with the mean score of its ``k`` nearest chunks by embedding:
``(1 − w) · s(c) + w · mean(s(n) for n in N(c))``. Chunks about the same thing lend each other the query terms
that one of them lacks, so a passage that says the same in other words rises, and a chunk that matches a query
word by accident among unrelated neighbours sinks. It needs no labels; measured in the README ("Keyword scores
smoothed over similar chunks").

The graph (:mod:`indexing.neighbours`) is saved with each index version by the build, or computed when a search
first needs it for an index built before graphs were saved; :func:`smooth` works on a ranked list, so chunks
outside it count as 0.
"""

from __future__ import annotations

import numpy as np

from indexing.backends.base import Ranked

SMOOTHING_DEPTH = 300
"""Chunks of the raw ranking that are smoothed (a caller asking for fewer gets the top of these)."""


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
