"""BM25 variants on a labelled set, alone and fused, beside their label-free dev scores: ``python -m bench.keyword``.

For each BM25 variant (analyzer, ``k1``/``b``, RM3), a BM25 index is built in memory over the
index's chunk texts. Dense and LSI candidates come from the index once. Each variant is then scored four ways:
BM25 alone and hybrid on the labelled queries (document level, a document's score is its best chunk's), and the
same two on the synthetic dev queries that ``mlsearch tune`` uses (chunk level, no labels). The hybrid fuses
with the fusion :func:`finetune.tune.choose_fusion` picks on the dev queries with the default BM25, as
``mlsearch tune`` scores BM25 options (``--refit-fusion`` picks it again for each variant, 88 fusions each), so
the labelled hybrid column is what label-free tuning would deliver with that BM25. Prints one Markdown table.

Usage::

    python -m bench.keyword --dataset builtin --index-dir indexes/eval-cache/builtin-KEY/index
    python -m bench.keyword --dataset ../shared/datasets/cranfield --index-dir indexes/eval-cache/cranfield-KEY/index
"""

from __future__ import annotations

import time

from bench.labelled import dataset_parser, open_labelled
from evaluation.metrics import compute
from finetune.tune import DevQuery, Ranked, choose_fusion, collect_candidates, dev_queries, ndcg_at_10
from indexing.backends.base import ranked_hits
from indexing.backends.bm25 import Bm25Config, Bm25Index
from search.doc_scoring import document_scores
from search.fusion import fuse, untuned_fusion

VARIANTS: dict[str, Bm25Config] = {
    "default (k1 1.5, b 0.75, english stem+stop)": Bm25Config(),
    "no stemming": Bm25Config(stemmer="none"),
    "porter stemming": Bm25Config(stemmer="porter"),
    "no stop words": Bm25Config(stop_words="none"),
    "k1 0.9 b 0.4": Bm25Config(k1=0.9, b=0.4),
    "k1 1.2 b 0.75": Bm25Config(k1=1.2),
    "k1 2.0 b 0.75": Bm25Config(k1=2.0),
    "k1 1.5 b 0.9": Bm25Config(b=0.9),
    "RM3 10 terms, 10 docs, 0.5": Bm25Config(rm3_terms=10),
    "RM3 20 terms, 10 docs, 0.5": Bm25Config(rm3_terms=20),
    "RM3 10 terms, 5 docs, 0.5": Bm25Config(rm3_terms=10, rm3_docs=5),
    "RM3 10 terms, 10 docs, 0.7": Bm25Config(rm3_terms=10, rm3_weight=0.7),
    "RM3 10/10/0.5, k1 2.0": Bm25Config(k1=2.0, rm3_terms=10),
}


def main() -> None:
    """Print each BM25 variant's labelled and dev nDCG@10, alone and in the dev-tuned hybrid."""
    parser = dataset_parser(__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="Comma-separated variant numbers (1-based) to run.")
    parser.add_argument("--refit-fusion", action="store_true", help="Choose the fusion again for each variant.")
    args = parser.parse_args()
    started = time.perf_counter()
    opened = open_labelled(args)
    data, manifest, searcher, labels = opened.data, opened.manifest, opened.searcher, opened.labels
    labelled = [DevQuery(qid, text, "labelled", -1, "") for qid, text in data.queries.items() if qid in data.qrels]
    dev = dev_queries(searcher)
    methods = ["dense", "bm25"] + (["lsi"] if "lsi" in manifest.backends else [])
    others = [m for m in methods if m != "bm25"]
    fixed = {"labelled": collect_candidates(searcher, labelled, others, args.k),
             "dev": collect_candidates(searcher, dev, others, args.k)}
    texts = list(searcher.store.embedding_texts())
    default_fusion = untuned_fusion(searcher.config.fusion, searcher.config.rrf_k)
    reference = Bm25Index(Bm25Config())
    reference.build(texts)
    shared_fusion = choose_fusion(default_fusion, methods, {
        **fixed["dev"], "bm25": [ranked_hits(reference.search(q.text, args.k)) for q in dev]}, dev)[0]
    del reference

    def labelled_ndcg(lists: list[Ranked]) -> float:
        run = {q.id: document_scores(ranked, labels, args.k) for q, ranked in zip(labelled, lists, strict=True)}
        return compute(data.qrels, run, ["ndcg@10"])["ndcg@10"]

    print(f"{data.name}: {len(labelled)} labelled queries, {len(dev)} dev queries; index {manifest.version} "
          f"({len(texts)} chunks)")
    for method in others:
        print(f"{method}: labelled {labelled_ndcg(fixed['labelled'][method]):.4f}, "
              f"dev {_dev_ndcg(fixed['dev'][method], dev):.4f}")
    print("| # | BM25 variant | labelled BM25 | labelled hybrid (dev-tuned) | dev BM25 | dev hybrid | fusion |")
    print("|---:|---|---:|---:|---:|---:|---|")
    wanted = {int(n) for n in args.only.split(",") if n}
    for number, (name, config) in enumerate(VARIANTS.items(), start=1):
        if wanted and number not in wanted:
            continue
        index = Bm25Index(config)
        index.build(texts)
        lists: dict[str, list[Ranked]] = {
            key: [ranked_hits(index.search(query.text, args.k)) for query in queries]
            for key, queries in (("labelled", labelled), ("dev", dev))
        }
        dev_candidates = {**fixed["dev"], "bm25": lists["dev"]}
        fusion = (choose_fusion(default_fusion, methods, dev_candidates, dev)[0] if args.refit_fusion
                  else shared_fusion)
        dev_hybrid = _dev_ndcg([fuse(fusion, [dev_candidates[m][i] for m in fusion.methods])
                                for i in range(len(dev))], dev)
        dev_bm25 = _dev_ndcg(lists["dev"], dev)
        labelled_candidates = {**fixed["labelled"], "bm25": lists["labelled"]}
        hybrid = labelled_ndcg([fuse(fusion, [labelled_candidates[m][i] for m in fusion.methods])
                                for i in range(len(labelled))])
        print(f"| {number} | {name} | {labelled_ndcg(lists['labelled']):.4f} | {hybrid:.4f} | {dev_bm25:.4f} | "
              f"{dev_hybrid:.4f} | {fusion.label()} |", flush=True)
    print(f"took {time.perf_counter() - started:.0f} s")


def _dev_ndcg(lists: list[Ranked], queries: list[DevQuery]) -> float:
    """Mean chunk-level nDCG@10 over dev queries (each query's source chunk is its answer)."""
    return sum(ndcg_at_10([p for p, _ in r], q.position) for r, q in zip(lists, queries, strict=True)) / len(queries)


if __name__ == "__main__":
    main()
