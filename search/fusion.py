"""Reciprocal rank fusion of several rankings."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

T = TypeVar("T", bound=Hashable)


def reciprocal_rank_fusion(rankings: Sequence[Sequence[T]], k: int = 60) -> list[tuple[T, float]]:
    """Fuse rankings by summing ``1 / (k + rank)`` (rank from 1) for every list an item appears in.

    Cormack, Clarke and Büttcher (2009), "Reciprocal rank fusion outperforms Condorcet and individual rank
    learning methods". Ties are broken by the best rank an item reached, then by first appearance.

    Args:
        rankings: Each a list of item ids, best first.
        k: The smoothing constant (60 in the paper).

    Returns:
        ``(item, fused score)`` pairs, best first.

    Example:
        >>> reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=60)[0][0]
        'b'
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    scores: dict[T, float] = {}
    best: dict[T, int] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
            best[item] = min(best.get(item, rank), rank)
    order = {item: i for i, item in enumerate(scores)}
    return sorted(scores.items(), key=lambda kv: (-kv[1], best[kv[0]], order[kv[0]]))
