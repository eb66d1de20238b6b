"""Retrieval metrics, computed by ranx (https://amenra.github.io/ranx/), never by hand.

Conventions: nDCG uses linear gain (Järvelin and Kekäläinen, as ``trec_eval`` computes it), grades above 0
are relevant, a query with no result scores 0, and documents with equal scores are ordered as ranx orders
them; the runs built by :mod:`evaluation.runner` never have equal scores, so the order is the searcher's.

ranx compiles its metrics with numba the first time they run (about 30 s once; the compiled code is cached
next to ranx, or in numba's user cache when that is not writable).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

Qrels = Mapping[str, Mapping[str, int]]
"""Query id → {document id: grade}."""
Run = Mapping[str, Mapping[str, float]]
"""Query id → {document id: score}."""

METRICS: tuple[str, ...] = ("ndcg@10", "mrr@10", "recall@1", "recall@10", "recall@100", "map")
"""The reported metrics (``map`` is over everything retrieved, i.e. at the run's depth)."""
PRIMARY_METRIC = "ndcg@10"
RECALL_CUTOFFS: tuple[int, ...] = (1, 2, 3, 5, 10, 20, 50, 100)


def _ranx(qrels: Qrels, run: Run) -> tuple[Any, Any]:
    from ranx import Qrels as RanxQrels
    from ranx import Run as RanxRun

    judged = {q: {d: int(g) for d, g in docs.items()} for q, docs in qrels.items()}
    if not judged:
        raise ValueError("qrels is empty")
    ranked = {q: {d: float(s) for d, s in run.get(q, {}).items()} for q in judged}
    return RanxQrels(judged), RanxRun(ranked)


def per_query(qrels: Qrels, run: Run, metrics: Sequence[str] = METRICS) -> dict[str, dict[str, float]]:
    """Every metric for every judged query.

    Args:
        qrels: Query id → {document id: grade}; every query in it is scored.
        run: Query id → {document id: score}; higher is better; queries missing here score 0, and queries
            that are not judged are ignored.
        metrics: ranx metric names, e.g. ``ndcg@10``, ``mrr@10``, ``recall@100``, ``map``.

    Returns:
        Metric → {query id: score}.

    Raises:
        ValueError: ``qrels`` is empty or a metric name is unknown to ranx.

    Example:
        >>> per_query({"q": {"a": 1}}, {"q": {"b": 2.0, "a": 1.0}}, ["mrr@10"])  # doctest: +SKIP
        {'mrr@10': {'q': 0.5}}
    """
    from ranx import evaluate

    ranx_qrels, ranx_run = _ranx(qrels, run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's uint64→int64 cast notice inside ranx
        evaluate(ranx_qrels, ranx_run, list(metrics), make_comparable=True, save_results_in_run=True)
    return {m: {str(q): float(s) for q, s in ranx_run.scores[m].items()} for m in metrics}


def compute(qrels: Qrels, run: Run, metrics: Sequence[str] = METRICS) -> dict[str, float]:
    """The mean of every metric over the judged queries (see :func:`per_query` for the arguments).

    Example:
        >>> compute({"q": {"a": 1}}, {"q": {"b": 2.0, "a": 1.0}}, ["mrr@10", "recall@1"])  # doctest: +SKIP
        {'mrr@10': 0.5, 'recall@1': 0.0}
    """
    scores = per_query(qrels, run, metrics)
    return {m: _mean(scores[m].values()) for m in metrics}


def recall_curve(qrels: Qrels, run: Run, cutoffs: Sequence[int] = RECALL_CUTOFFS) -> dict[int, float]:
    """Mean recall at each cutoff, for a recall@k plot."""
    means = compute(qrels, run, [f"recall@{k}" for k in cutoffs])
    return {k: means[f"recall@{k}"] for k in cutoffs}


def _mean(values: Any) -> float:
    values = list(values)
    return float(sum(values) / len(values)) if values else 0.0
