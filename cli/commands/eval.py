"""``mlsearch eval``: compare retrieval methods on a dataset and write a report."""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from cli.commands import common
from cli.commands.common import cli_errors, make_settings, print_json
from mlsearch.catalog import DEFAULT_VECTOR_BACKEND, VECTOR_BACKEND_NAMES


@cli_errors
def run(
    dataset: Annotated[
        str, typer.Option("--dataset", help="'builtin', a BEIR folder, or an answer-span .tsv (id, query, evidence).")
    ] = "builtin",
    methods: Annotated[
        str,
        typer.Option("--methods", help="Comma-separated: lsi, bm25, dense, hybrid (the index's fusion and "
                                       "feedback) and the fixed variants hybrid-rrf, hybrid-convex, hybrid-zscore "
                                       "(no feedback), hybrid-prf and hybrid-noprf (the index's fusion with the "
                                       "default pseudo-relevance feedback, and without); "
                                       "METHOD+rerank reranks a method's top results with the cross-encoder "
                                       "(MLSEARCH_RERANKER or the index's own)."),
    ] = "lsi,bm25,dense,hybrid",
    backend: Annotated[str, typer.Option(
        "--backend", help=f"Vector backend of dense and hybrid: {', '.join(VECTOR_BACKEND_NAMES)}.")
    ] = DEFAULT_VECTOR_BACKEND,
    out: Annotated[Path | None, typer.Option("--out", help="Report folder (reports/<dataset>-<time>).")] = None,
    k: Annotated[int, typer.Option("-k", "--k", help="Documents ranked per query.")] = 100,
    corpus: Annotated[
        Path | None, typer.Option("--corpus", help="Corpus judged by builtin and answer-span sets (corpus/).")
    ] = None,
    index_dir: Annotated[
        Path | None, typer.Option("--index-dir", help="Index reused when it holds the same corpus and model.")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Sentence-transformers name or path.")] = None,
    split: Annotated[str, typer.Option("--split", help="Qrels split: qrels/<split>.tsv.")] = "test",
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON on stdout.")] = False,
    tune: Annotated[
        bool, typer.Option("--tune", help="First run `mlsearch tune` on the index (synthetic queries, no labels).")
    ] = False,
) -> None:
    """Evaluate retrieval methods on a dataset: metrics, significance tests, latency, runs and a report."""
    from evaluation.datasets import load_dataset
    from evaluation.indexes import needed_backends, prepare_index
    from evaluation.report import metrics_markdown, summary_json, write_report
    from evaluation.runner import check_options, evaluate
    from indexing.backends.configs import build_config, search_config
    from search.searcher import Searcher

    settings = make_settings(corpus_dir=corpus, index_dir=index_dir, model=model)
    method_list = [m.strip() for m in methods.split(",") if m.strip()]
    check_options(method_list, k, backend)
    data = load_dataset(dataset, corpus_dir=settings.corpus_dir, split=split)
    say = functools.partial(typer.echo, err=True)
    say(f"dataset {data.name}: {len(data.queries)} queries ({data.kind}, {data.level} level)")
    encoder = common.get_encoder(settings, model)
    prepared = prepare_index(
        data, build_config(settings), encoder, needed_backends(method_list, backend), settings.resolved_eval_cache_dir,
        show_progress=True, progress=say,
    )
    if tune:
        from cli.commands.tune import run_tune
        from finetune.tune import write_tuning

        tuned = run_tune(settings, prepared.index_dir, backend, 300, 0, 0.005, model, say, encoder)
        write_tuning(prepared.index_dir, tuned, keep=settings.keep_versions)
        say(f"tuned: fusion {tuned.fusion.label()}; document scoring {tuned.doc_scoring.label()}")
    searcher = Searcher.open(prepared.index_dir, search_config(settings), encoder=encoder)
    try:
        result = evaluate(searcher, data, method_list, k=k, backend=backend, id_map=prepared.id_map,
                          show_progress=True)
    finally:
        searcher.close()
    result.index["origin"] = prepared.origin
    out_dir = out or Path("reports") / f"{data.name}-{datetime.now():%Y%m%d-%H%M%S}"
    paths = write_report(result, out_dir)
    if as_json:
        print_json({**summary_json(result), "out": str(out_dir)})
        return
    typer.echo(metrics_markdown(result))
    typer.echo(f"\nreport: {paths['report_html']} (also report.md, metrics.json, runs/)")
