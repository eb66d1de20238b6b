"""Fusion variants on a labelled dataset, beside what label-free tuning picks: ``python -m bench.fusion``.

Every method's top candidates are retrieved once per query (dense, BM25, LSI: ``k × 5`` chunks), then every
fusion variant is scored on them (document level, a document's score is its best chunk's), and
:func:`finetune.tune.tune` is run on the same index (synthetic queries only, the judgements are never shown to
it) so that its choice can be read against the labelled figures. Prints one Markdown table.

Usage::

    python -m bench.fusion --dataset builtin --index-dir indexes/eval-cache/builtin-KEY/index
    python -m bench.fusion --dataset ../shared/datasets/cranfield --index-dir indexes/eval-cache/cranfield-KEY/index
"""

from __future__ import annotations

import time

from bench.labelled import dataset_parser, open_labelled
from evaluation.metrics import compute
from finetune.tune import DevQuery, collect_candidates, tune
from search.doc_scoring import document_scores
from search.fusion import FUSION_VARIANTS, FusionConfig, fuse


def main() -> None:
    """Print nDCG@10 and MRR@10 of each part, each fixed fusion variant and the tuned fusion."""
    args = dataset_parser(__doc__.splitlines()[0]).parse_args()
    started = time.perf_counter()
    opened = open_labelled(args)
    data, manifest, searcher, labels = opened.data, opened.manifest, opened.searcher, opened.labels
    queries = [DevQuery(qid, text, "labelled", -1, "") for qid, text in data.queries.items() if qid in data.qrels]
    methods = [m for m in ("dense", "bm25", "lsi") if m == "dense" or m in manifest.backends]
    candidates = collect_candidates(searcher, queries, methods, min(1000, args.k * 5))
    tuned = tune(searcher, keyword=False)  # BM25 options: python -m bench.keyword

    def row(name: str, config: FusionConfig | None, method: str | None = None) -> str:
        run = {}
        for i, query in enumerate(queries):
            if method:
                ranked = candidates[method][i]
            else:
                assert config is not None
                ranked = fuse(config, [candidates[m][i] for m in config.methods])
            run[query.id] = document_scores(ranked, labels, args.k)
        scores = compute(data.qrels, run, ["ndcg@10", "mrr@10"])
        return f"| {name} | {scores['ndcg@10']:.4f} | {scores['mrr@10']:.4f} |"

    print(f"{data.name}: {len(queries)} queries; index {manifest.version} ({len(searcher.store)} chunks)")
    print("| method | nDCG@10 | MRR@10 |\n|---|---:|---:|")
    for method in methods:
        print(row(method, None, method))
    for name, config in FUSION_VARIANTS.items():
        print(row(f"{name} ({config.label()})", config))
    print(row(f"hybrid, tuned without labels ({tuned.fusion.label()})", tuned.fusion))
    print(f"tuning: {'; '.join(tuned.reasons)}")
    print(f"took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
