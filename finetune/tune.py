"""Label-free tuning of hybrid retrieval on synthetic dev queries (``mlsearch tune``).

No human judgement is used. Synthetic queries are made from the index's own chunks by the heuristic generator of
:mod:`finetune.queries` (heading questions, key-phrase queries, inverse-cloze sentences); a query's source chunk
(and its document) is its one relevant answer. Every method's candidate list (``depth`` deep, 100 by default) is
retrieved once per query; each fusion variant is then scored on those lists, so a grid of variants costs
seconds.

The choice is a champion/challenger decision, as for fine-tuning: the champion is the untuned default
(:func:`search.fusion.untuned_fusion`, the equal-weight z-score combination of dense and BM25 unless
``MLSEARCH_FUSION`` says otherwise), and a variant replaces it only when its nDCG@10, averaged over the query
kinds (each kind counts the same), is at least ``min_gain`` higher and no kind falls by more than ``tolerance``.

Synthetic queries are extractive (key phrases and sentences of the chunk), so they favour BM25 more than people's
questions do: chosen freely, the weights drift to BM25 (on Cranfield the freely chosen 0.2 / 0.8 scored below
plain RRF on the real queries). So the choice is shrunk towards balance: among the eligible variants within
``band`` (0.02) of the best score, the one whose dense and BM25 weights are closest to equal wins (ties: the
higher score), and weights stay between 0.2 and 0.8. Document-level scoring (``max`` or the sum of the top-n
chunk scores) is chosen the same way, with each query's source document as its answer.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from finetune.filters import drop_duplicates, drop_short
from finetune.queries import HeuristicGenerator
from indexing.backends.base import Ranked, ranked_hits
from indexing.backends.bm25 import Bm25Config, Bm25Index
from indexing.layout import build_lock, current_version_dir, derived_version
from indexing.manifest import Manifest
from indexing.updates import new_version_name
from mlsearch.catalog import (
    DEFAULT_VECTOR_BACKEND,
    FUSED_METHOD,
    FUSED_PARTS,
    METHODS,
    OTHER_BASE_METHODS,
    required_backends,
)
from mlsearch.errors import FinetuneError
from search.doc_scoring import DocScoring, document_scores
from search.fusion import FusionConfig, fuse
from search.searcher import QueryEmbeddingCache, Searcher, index_fusion

logger = logging.getLogger(__name__)
BM25 = Bm25Index.name
"""The keyword backend whose options are tuned here (it serves the method of the same name)."""
Progress = Callable[[str], None]

DEV_QUERIES = 300
DEPTH = 100
MIN_GAIN = 0.005
TOLERANCE = 0.02
BAND = 0.02
DENSE_WEIGHTS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
LSI_WEIGHTS = (0.1, 0.2, 0.3)
DOC_SCORINGS = (DocScoring("max"), DocScoring("sum", 2), DocScoring("sum", 3))
BM25_CHANGES: tuple[dict[str, Any], ...] = (
    {"stemmer": "porter"}, {"stemmer": "english"}, {"stop_words": "english"},
    {"k1": 0.9}, {"k1": 1.2}, {"k1": 2.0}, {"b": 0.4}, {"b": 0.9},
    {"rm3_terms": 10}, {"rm3_terms": 20}, {"rm3_terms": 10, "rm3_docs": 5},
)
"""The BM25 options tried, each alone against the index's own; the winners are then tried together.

Turning stemming or stop-word removal *off* is never tried: a synthetic query copies its chunk's word forms, so
it cannot show what normalisation is for (matching other forms of a word), only what it costs. On Cranfield the
dev queries preferred no stemming (+0.007 dev nDCG@10) while it lowered BM25 on the real queries from 0.373 to
0.351 (``python -m bench.keyword``). An index built without them (``MLSEARCH_BM25_STEMMER=none``) may be
switched back on; the choice between two stemmers stays.
"""


@dataclass(frozen=True)
class DevQuery:
    """A synthetic query and the chunk (and document) it was made from."""

    id: str
    text: str
    kind: str
    position: int
    doc_id: str


@dataclass(frozen=True)
class Trial:
    """One variant scored on the dev queries.

    Attributes:
        name: The variant's label.
        by_kind: Query kind → mean nDCG@10.
        score: Mean over kinds (each kind weighs the same).
        config: The fusion (or document scoring) tried.
    """

    name: str
    by_kind: dict[str, float]
    score: float
    config: FusionConfig | DocScoring | Bm25Config | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {"name": self.name, "score": round(self.score, 4),
                "by_kind": {k: round(v, 4) for k, v in self.by_kind.items()}}


@dataclass
class TuneResult:
    """What tuning chose and everything it measured.

    Attributes:
        fusion: The fusion hybrid search will use.
        doc_scoring: How document-level evaluation scores a document.
        champion: The default fusion's trial.
        fusion_trials: Every fusion variant, best first (plus dense and BM25 alone, for reference).
        doc_trials: Every document scoring tried, best first.
        bm25: The BM25 options chosen (None: BM25 was not tuned).
        bm25_trials: Every BM25 option set tried (scored by its tuned hybrid), best first.
        bm25_index: The BM25 index built with ``bm25`` when it differs from the index's own (written by
            :func:`write_tuning`); None when the index's own was kept.
        queries: Query kind → number of dev queries.
        reasons: Why each choice was made.
        seconds: How long it took.
    """

    fusion: FusionConfig
    doc_scoring: DocScoring
    champion: Trial
    fusion_trials: list[Trial]
    doc_trials: list[Trial]
    queries: dict[str, int]
    reasons: list[str] = field(default_factory=list)
    seconds: float = 0.0
    bm25: Bm25Config | None = None
    bm25_trials: list[Trial] = field(default_factory=list)
    bm25_index: Bm25Index | None = None

    def manifest_entry(self) -> dict[str, Any]:
        """What is written into the index manifest's ``tuning``."""
        return {
            "fusion": self.fusion.to_dict(),
            "doc_scoring": self.doc_scoring.to_dict(),
            "tuned_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "dev_queries": self.queries,
            "reasons": self.reasons,
            "trials": [t.to_dict() for t in self.fusion_trials[:10]],
            **({BM25: asdict(self.bm25), "bm25_trials": [t.to_dict() for t in self.bm25_trials[:10]]}
               if self.bm25 is not None else {}),
        }

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (``mlsearch tune --json``)."""
        return {
            "fusion": self.fusion.to_dict(), "fusion_label": self.fusion.label(),
            "doc_scoring": self.doc_scoring.to_dict(), "champion": self.champion.to_dict(),
            "fusion_trials": [t.to_dict() for t in self.fusion_trials],
            "doc_trials": [t.to_dict() for t in self.doc_trials], "queries": self.queries,
            BM25: asdict(self.bm25) if self.bm25 is not None else None,
            "bm25_trials": [t.to_dict() for t in self.bm25_trials],
            "reasons": self.reasons, "seconds": round(self.seconds, 1),
        }


def dev_queries(searcher: Searcher, size: int = DEV_QUERIES, seed: int = 0) -> list[DevQuery]:
    """Up to ``size`` synthetic queries over the index's chunks, balanced across the query kinds.

    Raises:
        ValueError: ``size`` below 1.
    """
    if size < 1:
        raise ValueError(f"the number of dev queries must be at least 1, got {size}")
    chunks = list(enumerate(searcher.store))
    generated = drop_duplicates(drop_short(HeuristicGenerator(seed=seed).generate(chunks, 3)))
    by_kind: dict[str, list[Any]] = defaultdict(list)
    for query in generated:
        by_kind[query.kind].append(query)
    rng = random.Random(seed)
    for queries in by_kind.values():
        rng.shuffle(queries)
    picked: list[DevQuery] = []
    kinds = sorted(by_kind)
    while len(picked) < size and any(by_kind[k] for k in kinds):
        for kind in kinds:
            if by_kind[kind] and len(picked) < size:
                q = by_kind[kind].pop()
                picked.append(DevQuery(f"dev{len(picked)}", q.text, q.kind, q.position, q.doc_id))
    return picked


def collect_candidates(
    searcher: Searcher, queries: Sequence[DevQuery], methods: Sequence[str], depth: int = DEPTH,
    backend: str = DEFAULT_VECTOR_BACKEND, show_progress: bool = False,
) -> dict[str, list[Ranked]]:
    """Each method's top ``depth`` ``(position, score)`` list for every query (query embeddings in one batch)."""
    saved = searcher.cache
    searcher.cache = QueryEmbeddingCache(len(queries) + 1)
    try:
        if any(METHODS[m].needs_model for m in methods) and queries:
            vectors = searcher.encoder.encode([q.text for q in queries], batch_size=64)
            for query, vector in zip(queries, vectors, strict=True):
                searcher.cache.get_or_compute(query.text, functools.partial(_given, vector))
        out: dict[str, list[Ranked]] = {}
        for method in methods:
            out[method] = [
                searcher.retrieve(q.text, depth, method, backend)
                for q in tqdm(queries, desc=method, unit="query", disable=not show_progress)
            ]
        return out
    finally:
        searcher.cache = saved


def _given(vector: np.ndarray, _query: str) -> np.ndarray:
    return vector


def ndcg_at_10(ranked: Sequence[Any], relevant: Any) -> float:
    """nDCG@10 with one relevant item: ``1 / log2(rank + 1)`` when it ranks in the top 10, else 0."""
    for rank, item in enumerate(ranked[:10], start=1):
        if item == relevant:
            return float(1.0 / np.log2(rank + 1))
    return 0.0


def by_kind(queries: Sequence[DevQuery], scores: Sequence[float]) -> dict[str, float]:
    """Query kind → mean score."""
    groups: dict[str, list[float]] = defaultdict(list)
    for query, score in zip(queries, scores, strict=True):
        groups[query.kind].append(score)
    return {kind: float(np.mean(values)) for kind, values in sorted(groups.items())}


def trial(name: str, queries: Sequence[DevQuery], scores: Sequence[float],
          config: FusionConfig | DocScoring | Bm25Config | None = None) -> Trial:
    """A :class:`Trial` from per-query scores."""
    kinds = by_kind(queries, scores)
    return Trial(name, kinds, float(np.mean(list(kinds.values()))) if kinds else 0.0, config)


def fusion_grid(methods: Sequence[str], rrf_k: int = 60, depth: int = DEPTH) -> list[FusionConfig]:
    """The fusion variants tried: RRF (k 20 and 60), min-max and z-score convex, over dense and BM25 with the
    dense weight in 0.2…0.8, and with LSI as a third list (weight 0.1…0.3) when the index has it."""
    configs: list[FusionConfig] = []
    splits = [(w, round(1 - w, 2)) for w in DENSE_WEIGHTS]
    families: list[dict[str, Any]] = [{"kind": "rrf", "rrf_k": k} for k in sorted({20, rrf_k})]
    families += [{"kind": "convex", "normalization": n} for n in ("minmax", "zscore")]
    for family in families:
        for dense, bm25 in splits:
            configs.append(FusionConfig(methods=FUSED_PARTS, weights=(dense, bm25), depth=depth, **family))
        for extra in (m for m in methods if m in OTHER_BASE_METHODS):
            for lsi in LSI_WEIGHTS:
                for dense, bm25 in splits[1:-1]:
                    rest = 1 - lsi
                    weights = (round(dense * rest, 3), round(bm25 * rest, 3), lsi)
                    configs.append(FusionConfig(methods=(*FUSED_PARTS, extra), weights=weights, depth=depth,
                                                **family))
    return configs


def score_fusion(config: FusionConfig, candidates: Mapping[str, list[Ranked]],
                 queries: Sequence[DevQuery]) -> list[float]:
    """Per-query chunk-level nDCG@10 of one fusion."""
    return [
        ndcg_at_10([p for p, _ in fuse(config, [candidates[m][i] for m in config.methods])], query.position)
        for i, query in enumerate(queries)
    ]


def imbalance(config: FusionConfig | DocScoring | Bm25Config | None) -> float:
    """How far a fusion's dense and BM25 weights are from equal (0: equal, 1: one of them is 0)."""
    if not isinstance(config, FusionConfig) or not set(FUSED_PARTS) <= set(config.methods):
        return 0.0
    weights = dict(zip(config.methods, config.weights, strict=True))
    first, second = (weights[m] for m in FUSED_PARTS)
    return abs(first - second) / (first + second) if first + second else 1.0


def choose(
    champion: Trial, trials: Sequence[Trial], min_gain: float, tolerance: float, band: float = 0.0
) -> tuple[Trial, str]:
    """The challenger that replaces the champion, or the champion; with the reason.

    Eligible trials lose no more than ``tolerance`` on any query kind. Among the eligible within ``band`` of the
    best score, the most balanced (:func:`imbalance`) wins, ties going to the higher score; it replaces the
    champion only when it beats it by at least ``min_gain``.
    """
    eligible = [t for t in trials
                if all(t.by_kind.get(k, 0.0) >= v - tolerance for k, v in champion.by_kind.items())]
    top = max((t.score for t in eligible), default=None)
    near = [t for t in eligible if top is not None and t.score >= top - band]
    best = min(near, key=lambda t: (round(imbalance(t.config), 3), -t.score), default=None)
    if best is None or best.score < champion.score + min_gain:
        name = best.name if best else "none"
        gain = (best.score - champion.score) if best else 0.0
        return champion, (f"kept {champion.name} ({champion.score:.4f}): the best eligible variant, {name}, "
                          f"gains {gain:+.4f}, less than the required {min_gain:+.4f}")
    shrunk = f" (the most balanced within {band} of the best, {top:.4f})" if band and top != best.score else ""
    return best, (f"chose {best.name}: {best.score:.4f} against {champion.score:.4f} for {champion.name} "
                  f"({best.score - champion.score:+.4f}){shrunk}; no query kind falls by more than {tolerance}")


def choose_fusion(
    default: FusionConfig, methods: Sequence[str], candidates: Mapping[str, list[Ranked]],
    queries: Sequence[DevQuery], min_gain: float = MIN_GAIN, tolerance: float = TOLERANCE, band: float = BAND,
) -> tuple[FusionConfig, Trial, list[Trial], str]:
    """The fusion chosen on the dev queries' candidate lists against ``default`` (:func:`choose`).

    Returns:
        The chosen fusion (its ``source`` says whether tuning changed it), the default's trial, every variant's
        trial and the reason.
    """
    champion = trial("default " + default.label(), queries, score_fusion(default, candidates, queries), default)
    grid = fusion_grid(methods, default.rrf_k)
    trials = [trial(c.label(), queries, score_fusion(c, candidates, queries), c) for c in grid]
    winner, reason = choose(champion, trials, min_gain, tolerance, band)
    assert isinstance(winner.config, FusionConfig)
    fusion = FusionConfig.from_dict({**winner.config.to_dict(), "source": "mlsearch tune" if winner is not champion
                                     else "default (mlsearch tune kept it)"})
    return fusion, champion, trials, reason


def tune(
    searcher: Searcher,
    backend: str = DEFAULT_VECTOR_BACKEND,
    size: int = DEV_QUERIES,
    seed: int = 0,
    min_gain: float = MIN_GAIN,
    tolerance: float = TOLERANCE,
    band: float = BAND,
    show_progress: bool = False,
    progress: Progress | None = None,
    keyword: bool = True,
) -> TuneResult:
    """Choose the index's BM25 options, hybrid fusion and document scoring on synthetic dev queries, without labels.

    Args:
        searcher: An open searcher over the index to tune (needs a vector backend and BM25).
        backend: The vector backend of dense retrieval.
        size: Synthetic dev queries to make (balanced across kinds).
        seed: Seeds query generation and sampling.
        min_gain: The smallest mean nDCG@10 gain over the default that makes a variant win.
        tolerance: The largest fall on any query kind a winner may have.
        band: How far below the best score a more balanced fusion may be and still be preferred.
        show_progress: Progress bars on stderr.
        progress: Called with a short message at each step.
        keyword: Also choose the BM25 options (:func:`choose_bm25`); False keeps the index's BM25.

    Returns:
        The choices and every trial.

    Raises:
        IndexNotBuiltError: The index lacks BM25 or the vector backend.
        FinetuneError: No dev query could be made.
    """
    started = time.perf_counter()
    say = progress or (lambda message: logger.info("%s", message))
    for name in required_backends(FUSED_METHOD, backend):
        searcher.backend(name)
    queries = dev_queries(searcher, size, seed)
    if not queries:
        raise FinetuneError("no synthetic dev query could be made from this index's chunks")
    counts = dict(sorted(Counter(q.kind for q in queries).items()))
    built = searcher.manifest.backends
    methods = [*FUSED_PARTS, *(m for m in OTHER_BASE_METHODS if METHODS[m].default_backend in built)]
    say(f"{len(queries)} synthetic dev queries ({', '.join(f'{n} {k}' for k, n in counts.items())}); "
        f"retrieving the top {DEPTH} of {', '.join(methods)}")
    candidates = collect_candidates(searcher, queries, methods, DEPTH, backend, show_progress)

    default = index_fusion(Manifest.model_validate({**searcher.manifest.model_dump(), "tuning": None}),
                           searcher.config.rrf_k, searcher.config.fusion)
    bm25: Bm25Config | None = None
    bm25_trials: list[Trial] = []
    bm25_index: Bm25Index | None = None
    reasons = []
    if keyword:
        say(f"trying {len(BM25_CHANGES)} BM25 option changes in the hybrid")
        bm25, bm25_trials, bm25_reason, bm25_index, bm25_lists = choose_bm25(
            searcher, default, methods, candidates, queries, min_gain, tolerance, band, show_progress)
        candidates = {**candidates, BM25: bm25_lists}
        reasons.append(bm25_reason)
    say(f"scoring {len(fusion_grid(methods, default.rrf_k))} fusion variants")
    fusion, champion, trials, reason = choose_fusion(default, methods, candidates, queries, min_gain, tolerance,
                                                     band)
    parts = [trial(f"{m} alone", queries, [ndcg_at_10([p for p, _ in ranked], q.position)
                                            for ranked, q in zip(candidates[m], queries, strict=True)])
             for m in methods]
    doc_trials, doc_reason, doc_scoring = _choose_doc_scoring(searcher, fusion, candidates, queries, min_gain,
                                                              tolerance)
    ordered = sorted([*trials, *parts], key=lambda t: -t.score)
    return TuneResult(fusion=fusion, doc_scoring=doc_scoring, champion=champion, fusion_trials=ordered,
                      doc_trials=doc_trials, queries=counts, reasons=[*reasons, reason, doc_reason],
                      seconds=time.perf_counter() - started, bm25=bm25, bm25_trials=bm25_trials,
                      bm25_index=bm25_index)


def choose_bm25(
    searcher: Searcher, default: FusionConfig, methods: Sequence[str], candidates: Mapping[str, list[Ranked]],
    queries: Sequence[DevQuery], min_gain: float = MIN_GAIN, tolerance: float = TOLERANCE, band: float = BAND,
    show_progress: bool = False,
) -> tuple[Bm25Config, list[Trial], str, Bm25Index | None, list[Ranked]]:
    """The BM25 options whose hybrid scores best on the dev queries.

    Each change of :data:`BM25_CHANGES` is tried alone on top of the index's own options (a BM25 index is built
    in memory over the chunk texts); the changes that gain at least ``min_gain`` are then tried together (for
    one option changed two ways, the better way). The winner is chosen by :func:`choose` against the index's own
    BM25, so a change must gain ``min_gain`` and lose no more than ``tolerance`` on any query kind. A set is
    scored by the hybrid rather than BM25 alone, since hybrid search is what it serves: the fusion tuned on the
    index's own BM25 (one step of coordinate ascent; :func:`tune` then tunes the fusion again on the winner).

    Returns:
        The chosen options, every trial (best first), the reason, the built index when it is not the index's
        own (else None), and its candidate lists for the queries.
    """
    own = searcher.backend(BM25)
    assert isinstance(own, Bm25Index)
    current = own.config
    texts = list(searcher.store.embedding_texts())
    built: dict[Bm25Config, tuple[Bm25Index, list[Ranked]]] = {}
    fusion = choose_fusion(default, methods, candidates, queries, min_gain, tolerance, band)[0]

    def score(config: Bm25Config) -> Trial:
        if config == current:
            lists = list(candidates[BM25])
        else:
            index = Bm25Index(config)
            index.build(texts)
            lists = [ranked_hits(index.search(q.text, DEPTH)) for q in queries]
            built[config] = (index, lists)
        lists_of = {**candidates, BM25: lists}
        return trial(_bm25_label(config, current), queries, score_fusion(fusion, lists_of, queries), config)

    champion = score(current)
    changes = [c for c in BM25_CHANGES if replace(current, **c) != current]
    singles = []
    for change in tqdm(changes, desc="bm25 options", unit="set", disable=not show_progress):
        singles.append((change, score(replace(current, **change))))
    gaining = sorted((pair for pair in singles if pair[1].score >= champion.score + min_gain),
                     key=lambda pair: -pair[1].score)
    merged: dict[str, Any] = {}
    for change, _ in gaining:
        if not set(change) & set(merged):
            merged.update(change)
    trials = [t for _, t in singles]
    if len([c for c, _ in gaining if set(c) <= set(merged)]) > 1:
        trials.append(score(replace(current, **merged)))
    winner, reason = choose(champion, trials, min_gain, tolerance)
    assert isinstance(winner.config, Bm25Config)
    chosen = winner.config
    index, lists = built.get(chosen, (None, list(candidates[BM25])))
    return chosen, sorted([champion, *trials], key=lambda t: -t.score), "BM25: " + reason, index, lists


def _bm25_label(config: Bm25Config, base: Bm25Config) -> str:
    changed = {k: v for k, v in asdict(config).items() if asdict(base)[k] != v}
    return "bm25 " + (", ".join(f"{k}={v}" for k, v in changed.items()) if changed else "as built")


def _choose_doc_scoring(
    searcher: Searcher, fusion: FusionConfig, candidates: Mapping[str, list[Ranked]], queries: Sequence[DevQuery],
    min_gain: float, tolerance: float,
) -> tuple[list[Trial], str, DocScoring]:
    labels = [chunk.doc_id for chunk in searcher.store]
    fused = [fuse(fusion, [candidates[m][i] for m in fusion.methods]) for i in range(len(queries))]
    trials = []
    for scoring in DOC_SCORINGS:
        scores = [ndcg_at_10(list(document_scores(ranked, labels, 10, scoring)), q.doc_id)
                  for ranked, q in zip(fused, queries, strict=True)]
        trials.append(trial(scoring.label(), queries, scores, scoring))
    winner, reason = choose(trials[0], trials[1:], min_gain, tolerance)
    assert isinstance(winner.config, DocScoring)
    source = "mlsearch tune" if winner is not trials[0] else "default (mlsearch tune kept it)"
    chosen = DocScoring(winner.config.aggregate, winner.config.top_n, source)
    return sorted(trials, key=lambda t: -t.score), "document scoring: " + reason, chosen


def write_tuning(index_dir: str | Path, result: TuneResult, keep: int = 2) -> Manifest:
    """Publish the choices as a new version of the index ``index_dir`` points to.

    The new version shares the current one's files, with the choices in its manifest's ``tuning`` and, when
    tuning chose other BM25 options, the BM25 index built with them (its options are saved with it, so document
    updates keep them). It is published as a build is (checksums, atomic swap, ``keep`` versions kept), so a
    service picks it up on its next reload and verifies it first.
    """
    index_dir = Path(index_dir)
    with build_lock(index_dir):
        source = current_version_dir(index_dir)
        manifest = Manifest.load(source)
        version = new_version_name("tuned")
        replaced = {BM25} if result.bm25_index is not None else set()
        with derived_version(index_dir, source, version, replaced, keep) as build_dir:
            if result.bm25_index is not None:
                result.bm25_index.save(build_dir / BM25)
                manifest.backends[BM25] = result.bm25_index.describe()
            manifest.tuning = {**(manifest.tuning or {}), **result.manifest_entry()}
            manifest.tuning["tuned_from"] = manifest.version
            manifest.version = version
            manifest.save(build_dir)
    return manifest
