"""Metrics written out from their textbook definitions, to check the library-backed ones against."""

from __future__ import annotations

import math
from collections.abc import Mapping


def ranking(scores: Mapping[str, float]) -> list[str]:
    """Document ids by decreasing score."""
    return [doc for doc, _ in sorted(scores.items(), key=lambda kv: -kv[1])]


def ndcg_at(qrels: Mapping[str, int], scores: Mapping[str, float], k: int = 10) -> float:
    """nDCG@k with linear gain: sum of grade / log2(rank + 1), over the same sum for the ideal order."""
    dcg = sum(qrels.get(doc, 0) / math.log2(rank + 1) for rank, doc in enumerate(ranking(scores)[:k], start=1))
    ideal = sorted((g for g in qrels.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, start=1))
    return dcg / idcg if idcg else 0.0


def mrr_at(qrels: Mapping[str, int], scores: Mapping[str, float], k: int = 10) -> float:
    """1 / rank of the first relevant document in the top k (0 when none)."""
    for rank, doc in enumerate(ranking(scores)[:k], start=1):
        if qrels.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def mean(values: list[float]) -> float:
    """Arithmetic mean."""
    return sum(values) / len(values)
