"""Run a dataset's queries through a searcher with several methods and score every run.

The reusable entry point is :func:`evaluate`::

    from evaluation.datasets import load_dataset
    from evaluation.runner import evaluate
    from mlsearch.configs import SearchConfig
    from search.searcher import Searcher

    searcher = Searcher.open(index_dir, SearchConfig(), encoder=encoder)
    result = evaluate(searcher, load_dataset("builtin"), methods=["bm25", "dense"], k=100)
    result.metrics_table()["dense"]["ndcg@10"]          # mean nDCG@10
    result.methods["dense"].per_query["ndcg@10"]["q1"]  # one query's nDCG@10

Document-level scoring: for a dataset judged per document, a document's score is its best chunk's score, or the
sum of its top-n chunk scores when the index was tuned so (:mod:`search.doc_scoring`). To rank ``k`` documents
the searcher retrieves ``k × depth_factor`` chunks (at most 1000) and scores each document from them.

Besides ``hybrid`` (the index's own fusion: tuned by ``mlsearch tune``, else the untuned default; with the
configured pseudo-relevance feedback, ``MLSEARCH_PRF_*``), the fixed fusion variants of
:data:`search.fusion.FUSION_VARIANTS` (``hybrid-rrf``, ``hybrid-convex``, ``hybrid-zscore``; without feedback)
and the feedback variants of :data:`search.feedback.FEEDBACK_VARIANTS` (``hybrid-prf``: the index's fusion with
the fixed feedback setting) can be evaluated side by side, and any of them reranked: ``<method>+rerank`` (for example
``hybrid+rerank``) reorders the method's top ``rerank_top_n`` chunks with the cross-encoder the searcher is
configured with (``MLSEARCH_RERANKER``, else the one ``mlsearch rerank-train`` named in the index manifest).

Scores of equal value are lowered by the smallest float step so that every run is strictly ordered as the
searcher ranked it, and any TREC tool reads the same order from the run file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from tqdm import tqdm

from evaluation.datasets import EvalDataset, span_qrels
from evaluation.metrics import METRICS, PRIMARY_METRIC, RECALL_CUTOFFS, per_query
from evaluation.significance import PairedComparison, all_pairs
from mlsearch.catalog import DEFAULT_VECTOR_BACKEND, FUSED_METHOD, METHOD_NAMES, VECTOR_BACKEND_NAMES
from mlsearch.configs import FeedbackConfig
from mlsearch.errors import BadQueryError, DatasetError, UnknownBackendError
from search.doc_scoring import DocScoring, document_scores
from search.feedback import FEEDBACK_VARIANTS
from search.fusion import FUSION_VARIANTS
from search.searcher import MAX_K, QueryEmbeddingCache, Searcher

logger = logging.getLogger(__name__)
DEPTH_FACTOR = 5
RERANK_SUFFIX = "+rerank"
"""Appended to a method's name: the same method with its head reordered by the cross-encoder reranker."""
VARIANTS: tuple[str, ...] = (*FUSION_VARIANTS, *FEEDBACK_VARIANTS)
EVAL_METHODS: tuple[str, ...] = (*METHOD_NAMES, *VARIANTS,
                                 *(f"{m}{RERANK_SUFFIX}" for m in (*METHOD_NAMES, *VARIANTS)))
LATENCY_KEYS = ("latency_ms_p50", "latency_ms_p95")


@dataclass
class MethodResult:
    """One method's run and scores.

    Attributes:
        method: ``dense``, ``lsi``, ``bm25`` or ``hybrid``.
        run: Query id → {document (or chunk) id: score}, strictly decreasing in rank order.
        metrics: Mean of every metric in :data:`evaluation.metrics.METRICS`, plus ``latency_ms_p50`` and
            ``latency_ms_p95``.
        per_query: Metric → {query id: score} (the metrics, and ``recall@k`` for every plotted cutoff).
        latency_ms: Query id → milliseconds the searcher took to rank it.
        recall_curve: Cutoff → mean recall.
    """

    method: str
    run: dict[str, dict[str, float]]
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    latency_ms: dict[str, float]
    recall_curve: dict[int, float]


@dataclass
class EvaluationResult:
    """Everything an evaluation measured, and what it was measured on.

    Attributes:
        dataset: The dataset's summary (:meth:`EvalDataset.describe`).
        index: The index's version, path, model and corpus (from its manifest).
        methods: Method → its result, in the order evaluated.
        comparisons: Paired tests between every pair of methods on per-query :data:`PRIMARY_METRIC`.
        qrels: The judgements scored (for answer spans, the chunks found to contain the evidence).
        k: Documents (or chunks) ranked per query.
        backend: The vector backend of dense and hybrid.
        level: ``document`` or ``chunk``.
        scoring: How run items were scored, in words (shown in reports).
        unjudged: Answer-span queries whose evidence no chunk contains (left out).
        created_at: When the evaluation ran (ISO 8601, UTC).
        seconds: How long it took.
    """

    dataset: dict[str, Any]
    index: dict[str, Any]
    methods: dict[str, MethodResult]
    comparisons: list[PairedComparison]
    qrels: dict[str, dict[str, int]]
    k: int
    backend: str
    level: str
    scoring: str
    unjudged: list[str] = field(default_factory=list)
    created_at: str = ""
    seconds: float = 0.0

    def metrics_table(self) -> dict[str, dict[str, float]]:
        """Method → {metric: mean} with latency, as written to ``metrics.json``."""
        return {name: dict(result.metrics) for name, result in self.methods.items()}


def evaluate(
    searcher: Searcher,
    dataset: EvalDataset,
    methods: Sequence[str] = METHOD_NAMES,
    k: int = 100,
    backend: str = DEFAULT_VECTOR_BACKEND,
    id_map: Mapping[str, str] | None = None,
    depth_factor: int = DEPTH_FACTOR,
    show_progress: bool = False,
    doc_scoring: DocScoring | None = None,
) -> EvaluationResult:
    """Search every query of a dataset with each method, and score the runs.

    Args:
        searcher: An open searcher over the dataset's corpus.
        dataset: The dataset (:func:`evaluation.datasets.load_dataset`).
        methods: Methods to evaluate, in order (:data:`EVAL_METHODS`).
        k: How many documents (chunk-level datasets: chunks) to rank per query (1 to 1000).
        backend: The vector backend for ``dense`` and ``hybrid``.
        id_map: Index document id → dataset document id, when they differ (BEIR corpora).
        depth_factor: Chunks retrieved per wanted document at document level (capped at 1000 chunks).
        show_progress: A progress bar per method (on stderr).
        doc_scoring: How chunk scores make a document's (document-level datasets); the index's tuned choice,
            else ``max``, when omitted.

    Returns:
        The runs, metrics, per-query scores, latencies and paired tests.

    Raises:
        BadQueryError: An unknown method, or ``k`` out of range.
        DatasetError: No query can be judged (answer spans found in no chunk).
    """
    started = time.perf_counter()
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    methods = list(dict.fromkeys(methods))
    check_options(methods, k, backend)

    labels = _labels(searcher, dataset.level, id_map or {})
    qrels, unjudged = _qrels(searcher, dataset)
    queries = {qid: dataset.queries[qid] for qid in qrels}
    depth = min(MAX_K, k * depth_factor) if dataset.level == "document" else k
    chunk_scoring = DocScoring()
    if dataset.level == "document":
        tuned = (searcher.manifest.tuning or {}).get("doc_scoring")
        chunk_scoring = doc_scoring or (DocScoring.from_dict(tuned) if tuned else DocScoring())
        how = ("its best chunk's" if chunk_scoring.aggregate == "max"
               else f"the sum of its top {chunk_scoring.top_n} chunk scores")
        scoring = (f"document level: a document's score is {how}; {depth} chunks are retrieved per "
                   f"query and grouped by document to rank the top {k} documents")
    else:
        scoring = f"chunk level: the top {k} chunks; a chunk is relevant when its text contains the evidence"

    results: dict[str, MethodResult] = {}
    saved_cache = searcher.cache
    searcher.cache = QueryEmbeddingCache(0)  # every method pays for its own query embeddings
    try:
        for method in methods:
            results[method] = _run_method(searcher, method, queries, qrels, labels, k, depth, backend,
                                          show_progress, chunk_scoring)
    finally:
        searcher.cache = saved_cache
    comparisons = all_pairs({m: r.per_query[PRIMARY_METRIC] for m, r in results.items()}, PRIMARY_METRIC)
    return EvaluationResult(
        dataset=dataset.describe(), index=describe_index(searcher), methods=results, comparisons=comparisons,
        qrels=qrels, k=k, backend=backend, level=dataset.level, scoring=scoring, unjudged=unjudged,
        created_at=created_at, seconds=round(time.perf_counter() - started, 3),
    )


def check_options(methods: Sequence[str], k: int, backend: str) -> None:
    """Fail early on options :func:`evaluate` cannot use.

    Raises:
        BadQueryError: No method, an unknown method, or ``k`` out of range.
        UnknownBackendError: ``backend`` is not a vector backend.
    """
    unknown = [m for m in methods if m not in EVAL_METHODS]
    if unknown or not methods:
        raise BadQueryError(
            f"unknown method(s) {', '.join(unknown) or '(none)'}; valid: {', '.join(EVAL_METHODS)}"
        )
    if not 1 <= k <= MAX_K:
        raise BadQueryError(f"k must be between 1 and {MAX_K}, got {k}")
    if backend not in VECTOR_BACKEND_NAMES:
        raise UnknownBackendError(
            f"unknown vector backend {backend!r}; valid: {', '.join(VECTOR_BACKEND_NAMES)}"
        )


def describe_index(searcher: Searcher) -> dict[str, Any]:
    """The facts that identify the index searched: version, path, model, corpus and counts, and how ``hybrid``
    searched it (the index's fusion and the searcher's pseudo-relevance feedback) and whether BM25 was smoothed."""
    manifest = searcher.manifest
    graph = searcher.smoothing_graph
    return {
        "version": manifest.version, "path": str(searcher.directory), "built_at": manifest.built_at,
        "model": manifest.model.name, "weights_hash": manifest.model.weights_hash,
        "corpus_fingerprint": manifest.corpus.get("fingerprint"), "counts": dict(manifest.counts),
        "chunking": dict(manifest.chunking), "fusion": searcher.fusion.to_dict(),
        "feedback": searcher.config.feedback.to_dict(),
        "smoothing": {**asdict(searcher.config.smoothing), "applied": graph is not None,
                      "graph": None if graph is None else f"{graph.method}, {graph.source}"},
    }


def _labels(searcher: Searcher, level: str, id_map: Mapping[str, str]) -> list[str]:
    """What each index position counts as in a run: its dataset document id, or its chunk id."""
    if level == "chunk":
        return [chunk.id for chunk in searcher.store]
    return [id_map.get(chunk.doc_id, chunk.doc_id) for chunk in searcher.store]


def _qrels(searcher: Searcher, dataset: EvalDataset) -> tuple[dict[str, dict[str, int]], list[str]]:
    if dataset.level == "document":
        return {q: dict(d) for q, d in dataset.qrels.items()}, []
    qrels, unjudged = span_qrels(dataset.evidence, searcher.store)
    if unjudged:
        logger.warning("%d of %d answer-span queries match no chunk and are left out: %s", len(unjudged),
                       len(dataset.evidence), ", ".join(unjudged[:10]))
    if not qrels:
        raise DatasetError(f"{dataset.source}: no chunk of the index contains the evidence of any query")
    return qrels, unjudged


def _run_method(
    searcher: Searcher, method: str, queries: Mapping[str, str], qrels: dict[str, dict[str, int]],
    labels: Sequence[str], k: int, depth: int, backend: str, show_progress: bool, scoring: DocScoring,
) -> MethodResult:
    rerank = method.endswith(RERANK_SUFFIX)
    base = method.removesuffix(RERANK_SUFFIX)
    fusion = FUSION_VARIANTS.get(base)
    feedback = FEEDBACK_VARIANTS.get(base, FeedbackConfig() if fusion else None)  # fixed fusions: no feedback
    method_name = FUSED_METHOD if base in VARIANTS else base
    if rerank:  # a cross-encoder's scores are no chunk scores to add up: a document counts by its best chunk
        scoring = DocScoring()
    searcher.retrieve("warm up", 1, method_name, backend, fusion=fusion, rerank=rerank, feedback=feedback)
    run: dict[str, dict[str, float]] = {}
    latency: dict[str, float] = {}
    for qid, text in tqdm(queries.items(), desc=method, unit="query", disable=not show_progress):
        t = time.perf_counter()
        ranked = searcher.retrieve(text, depth, method_name, backend, fusion=fusion, rerank=rerank,
                                   feedback=feedback)
        latency[qid] = (time.perf_counter() - t) * 1000
        run[qid] = document_scores(ranked, labels, k, scoring)
    cutoffs = [f"recall@{c}" for c in RECALL_CUTOFFS]
    names = list(dict.fromkeys([*METRICS, *cutoffs]))
    scores = per_query(qrels, run, names)
    means = {m: float(np.mean(list(scores[m].values()))) for m in names}
    times = np.array(list(latency.values()))
    metrics = {m: means[m] for m in METRICS}
    metrics["latency_ms_p50"] = round(float(np.percentile(times, 50)), 3)
    metrics["latency_ms_p95"] = round(float(np.percentile(times, 95)), 3)
    logger.info("%s: %s", method, metrics)
    return MethodResult(
        method=method, run=run, metrics=metrics, per_query=scores, latency_ms=latency,
        recall_curve={c: means[f"recall@{c}"] for c in RECALL_CUTOFFS},
    )


def best_per_item(ranked: Sequence[tuple[int, float]], labels: Sequence[str], k: int) -> dict[str, float]:
    """Deduplicate a ranked list of positions by label, keeping each label's first (best) score.

    Args:
        ranked: ``(position, score)`` pairs, best first.
        labels: Position → label (document id or chunk id).
        k: How many labels to keep.

    Returns:
        Label → score, best first, with scores strictly decreasing (a tie is lowered by one float step).

    Example:
        >>> best_per_item([(0, 0.9), (1, 0.8), (2, 0.8)], ["a", "a", "b"], 10)
        {'a': 0.9, 'b': 0.8}
    """
    return document_scores(ranked, labels, k)
