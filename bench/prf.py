"""Pseudo-relevance feedback variants on a labelled set: ``python -m bench.prf``.

The queries are embedded once; each query's first-pass lists (dense and BM25, top ``k × 5`` chunks at document
level, ``k`` at chunk level) and their default fusion (equal-weight z-score) are computed once. Each variant
then takes its feedback chunks (the top of the fused list, or of the dense or BM25 list alone), refines the
lists as :meth:`search.searcher.Searcher.feedback_lists` does (Rocchio on the dense side, RM3 fed by those
chunks on the BM25 side) and fuses them again with the same fusion. BM25's own RM3 (the index option, fed by
BM25's own top 10) is measured beside them for reference. Every row is scored against the labels (document
level: a document's score is its best chunk's), with the paired difference against the plain hybrid (wins /
losses on nDCG@10, paired t-test) and the mean time of the feedback pass. Prints one Markdown table.

Usage::

    python -m bench.prf --dataset ../shared/datasets/cranfield --index-dir indexes/eval-cache/cranfield-KEY/index
    python -m bench.prf --dataset builtin --index-dir indexes/eval-cache/builtin-KEY/index
    python -m bench.prf --dataset QUESTIONS.tsv --corpus NOTES_DIR --index-dir indexes/eval-cache/NAME-KEY/index
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from bench.labelled import dataset_parser, open_labelled
from evaluation.datasets import span_qrels
from evaluation.metrics import per_query
from finetune.tune import tune
from indexing.backends.base import Ranked, ranked_hits
from indexing.backends.bm25 import Bm25Config, Bm25Index
from mlsearch.catalog import plan
from mlsearch.configs import DEFAULT_FEEDBACK, FeedbackConfig
from search.doc_scoring import document_scores
from search.feedback import with_first_pass
from search.fusion import fuse, untuned_fusion
from search.searcher import HYBRID_CANDIDATES, QueryEmbeddingCache, Searcher

Lists = dict[str, Ranked]


@dataclass(frozen=True)
class Variant:
    """One row: feedback from ``source``'s top (``hybrid``, ``dense`` or ``bm25``) refining the ``refine`` lists;
    with ``keep_first``, the first-pass lists are fused too, beside the refined ones (equal weights)."""

    name: str
    feedback: FeedbackConfig
    source: str = "hybrid"
    refine: tuple[str, ...] = ("dense", "bm25")
    keep_first: bool = False


VARIANTS: tuple[Variant, ...] = (
    Variant("dense Rocchio, feedback from dense top 5, w 0.7", FeedbackConfig(5, 0.7), "dense", ("dense",)),
    Variant("dense Rocchio, feedback from hybrid top 5, w 0.7", FeedbackConfig(5, 0.7), "hybrid", ("dense",)),
    Variant("BM25 RM3 fed by hybrid top 5 (10 terms, 0.5)", FeedbackConfig(5, 0.7, 10, 0.5), "hybrid", ("bm25",)),
    *(Variant(f"both, hybrid top {docs}, w {weight:g}, RM3 10 terms 0.5", FeedbackConfig(docs, weight, 10, 0.5))
      for docs in (3, 5, 10) for weight in (0.5, 0.7)),
    *(Variant(f"both, first-pass lists kept, hybrid top {docs}, w {weight:g}", FeedbackConfig(docs, weight, 10, 0.5),
              keep_first=True)
      for docs in (3, 5, 10) for weight in (0.5, 0.7)),
)


def main() -> None:
    """Print nDCG@10 and MRR@10 of the parts, the plain hybrid and every feedback variant."""
    parser = dataset_parser(__doc__.splitlines()[0])
    parser.add_argument("--tuned", action="store_true",
                        help="Fuse with the fusion `mlsearch tune` picks on this index (no labels) instead of the "
                             "untuned default.")
    args = parser.parse_args()
    started = time.perf_counter()
    # the model is opened as the index was built (torch, or an OpenVINO / ONNX export, int8 or not)
    opened = open_labelled(args)
    data, manifest, searcher = opened.data, opened.manifest, opened.searcher
    if data.level == "chunk":
        qrels, _ = span_qrels(data.evidence, searcher.store)
        labels = [chunk.id for chunk in searcher.store]
        depth = args.k
    else:
        qrels = {q: dict(d) for q, d in data.qrels.items()}
        labels = opened.labels
        depth = min(1000, args.k * 5)
    queries = {qid: text for qid, text in data.queries.items() if qid in qrels}
    texts = list(queries.values())
    searcher.cache = QueryEmbeddingCache(len(texts) + 1)
    searcher.cache.get_or_compute_many(texts, lambda missing: searcher.encoder.encode(missing, batch_size=64))
    fusion = (tune(searcher, keyword=False).fusion if args.tuned
              else untuned_fusion(searcher.config.fusion, searcher.config.rrf_k))
    steps = [step for part in fusion.methods for step in plan(part, "faiss")]
    first = [dict(zip(fusion.methods, searcher._rankings(q, steps, depth, None), strict=True)) for q in texts]
    fused = [fuse(fusion, [lists[m] for m in fusion.methods]) for lists in first]

    def scored(ranked: list[Ranked]) -> dict[str, dict[str, float]]:
        run = {qid: document_scores(r, labels, args.k) for qid, r in zip(queries, ranked, strict=True)}
        return per_query(qrels, run, ["ndcg@10", "mrr@10"])

    baseline = scored(fused)
    model = manifest.model
    print(f"{data.name}: {len(texts)} queries; index {manifest.version} ({searcher.chunk_count} chunks, "
          f"{model.name} {model.backend} {model.quantization or 'float'}); "
          f"fusion {fusion.label()}; first-pass depth {depth}")
    print("| variant | nDCG@10 | MRR@10 | Δ nDCG@10 vs hybrid | better / worse | paired t p | feedback ms/query |")
    print("|---|---:|---:|---:|---:|---:|---:|")

    def row(name: str, ranked: list[Ranked], ms: float | None = None) -> None:
        scores = scored(ranked)
        ndcg = np.array([scores["ndcg@10"][q] for q in queries])
        base = np.array([baseline["ndcg@10"][q] for q in queries])
        diff = ndcg - base
        p = float(stats.ttest_rel(ndcg, base).pvalue) if np.any(diff) else 1.0
        timing = f"{ms:.1f}" if ms is not None else ""
        print(f"| {name} | {ndcg.mean():.4f} | {np.mean(list(scores['mrr@10'].values())):.4f} | "
              f"{diff.mean():+.4f} | {int((diff > 0).sum())} / {int((diff < 0).sum())} | {p:.3f} | {timing} |",
              flush=True)

    for method in fusion.methods:
        row(f"{method} alone", [lists[method] for lists in first])
    row(f"hybrid ({fusion.label()}, no feedback)", fused)
    rm3 = Bm25Index(Bm25Config(rm3_terms=10))
    rm3.build(list(searcher.store.embedding_texts()))
    own = [ranked_hits(rm3.search(q, depth)) for q in texts]
    row("BM25 with its own RM3 (10 terms, 10 texts, 0.5) alone", own)
    row("hybrid with BM25's own RM3", [fuse(fusion, [o if m == "bm25" else lists[m] for m in fusion.methods])
                                       for lists, o in zip(first, own, strict=True)])
    for variant in VARIANTS:
        refined, ms = _refine(searcher, variant, texts, steps, first, fused, depth)
        if len(variant.refine) == 1:
            part = variant.refine[0]
            row(f"{part} list alone: {variant.name}", [lists[part] for lists in refined])
        if variant.keep_first:
            kept = with_first_pass(fusion)
            ranked = [fuse(kept, [*(old[m] for m in fusion.methods), *(new[m] for m in fusion.methods)])
                      for old, new in zip(first, refined, strict=True)]
        else:
            ranked = [fuse(fusion, [lists[m] for m in fusion.methods]) for lists in refined]
        row(f"hybrid: {variant.name}", ranked, ms)
    for chunks in dict.fromkeys((HYBRID_CANDIDATES, depth)):
        _print_latency(searcher, texts, chunks)
    print(f"took {time.perf_counter() - started:.0f} s")


def _print_latency(searcher: Searcher, texts: list[str], depth: int, rounds: int = 3) -> None:
    """Time ``Searcher.retrieve`` of hybrid without and with the fixed feedback (query embeddings cached), per
    query, alternating the two so that both see the same machine load; print the p50 and p95 of each."""
    times: dict[str, list[float]] = {"no feedback": [], "hybrid-prf": []}
    settings = {"no feedback": FeedbackConfig(), "hybrid-prf": DEFAULT_FEEDBACK}
    for _ in range(rounds):
        for text in texts:
            for name, feedback in settings.items():
                start = time.perf_counter()
                searcher.retrieve(text, depth, "hybrid", feedback=feedback)
                times[name].append((time.perf_counter() - start) * 1000)
    cells = [f"{name} p50 {np.percentile(t, 50):.2f} ms, p95 {np.percentile(t, 95):.2f} ms"
             for name, t in times.items()]
    print(f"hybrid retrieve of {depth} chunks, query embedding cached ({rounds} x {len(texts)} queries): "
          + "; ".join(cells))


def _refine(searcher: Searcher, variant: Variant, texts: list[str], steps: list[tuple[str, str]],
            first: list[Lists], fused: list[Ranked], depth: int) -> tuple[list[Lists], float]:
    """Each query's lists after the variant's feedback pass, and the pass's mean time per query in ms."""
    source: Callable[[int], Ranked] = (lambda i: fused[i]) if variant.source == "hybrid" else (
        lambda i: first[i][variant.source])
    out: list[Lists] = []
    started = time.perf_counter()
    for i, query in enumerate(texts):
        chosen = [p for p, _ in source(i)[: variant.feedback.docs]]
        wanted = [(part, name) for part, name in steps if part in variant.refine]
        lists = searcher.feedback_lists(query, wanted, [first[i][p] for p, _ in wanted], chosen, variant.feedback,
                                        depth, None)
        out.append({**first[i], **dict(zip([p for p, _ in wanted], lists, strict=True))})
    return out, (time.perf_counter() - started) * 1000 / max(len(texts), 1)


if __name__ == "__main__":
    main()
