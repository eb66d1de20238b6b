"""``mlsearch finetune``: adapt the index's model to the corpus without labels, promoted only if it measures better."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from cli.commands import common
from cli.commands.common import cli_errors, make_settings, print_json
from mlsearch.catalog import DEFAULT_VECTOR_BACKEND


@cli_errors
def finetune(
    index_dir: Annotated[Path | None, typer.Option("--index-dir", help="The current index.")] = None,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", help="Fine-tune on the evaluation index of this dataset instead (as `mlsearch "
                                       "eval` finds or builds it); its judgements are never read."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder of the promoted model (default: models/finetuned-<time>).")
    ] = None,
    corpus: Annotated[Path | None, typer.Option("--corpus", help="Corpus folder (default: the index's).")] = None,
    generator: Annotated[str, typer.Option("--generator", help="heuristic or doc2query.")] = "heuristic",
    generator_model: Annotated[
        Path | None, typer.Option("--generator-model", help="Local seq2seq model folder for doc2query.")
    ] = None,
    queries_per_chunk: Annotated[int, typer.Option("--queries-per-chunk", min=1)] = 3,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2)] = 32,
    learning_rate: Annotated[float, typer.Option("--learning-rate")] = 5e-5,
    max_seq_length: Annotated[
        int, typer.Option("--max-seq-length", help="Tokens per text while training (0: the model's).")
    ] = 128,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    eval_dataset: Annotated[
        str | None, typer.Option("--eval-dataset", help="Extra gate set: builtin, a BEIR folder or a span .tsv.")
    ] = None,
    queries: Annotated[
        Path | None, typer.Option("--queries", help="Logged queries to pseudo-label and train on (one a line).")
    ] = None,
    round_trip: Annotated[
        int | None, typer.Option("--round-trip", help="Keep queries whose chunk BM25 ranks in this top N.")
    ] = None,
    dev_fraction: Annotated[float, typer.Option("--dev-fraction", help="Share held out for the gate.")] = 0.2,
    split_unit: Annotated[
        str, typer.Option("--split-unit", help="Held out by: auto (documents, else sections, else chunk blocks), "
                                               "document, section or block.")
    ] = "auto",
    min_gain: Annotated[float, typer.Option("--min-gain", help="nDCG@10 rise needed on the primary set.")] = 0.01,
    tolerance: Annotated[float, typer.Option("--tolerance", help="nDCG@10 fall allowed on any set.")] = 0.02,
    primary: Annotated[str, typer.Option("--primary", help="The gate set whose gain decides.")] = "synthetic-dev",
    require_significance: Annotated[
        bool, typer.Option("--require-significance", help="Also need paired t-test p < 0.05 on the primary set.")
    ] = False,
    builtin: Annotated[bool, typer.Option("--builtin/--no-builtin", help="Gate on the built-in set.")] = True,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing model at --out.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Fine-tune the index's embedding model on synthetic queries; promote it only if the gate measures a gain."""
    from finetune.gate import GatePolicy
    from finetune.pipeline import FinetuneOptions, run_finetune
    from finetune.split import UNITS
    from finetune.train import TrainingConfig
    from indexing.backends.configs import build_config, search_config
    from search.searcher import Searcher

    if split_unit not in ("auto", *UNITS):
        raise typer.BadParameter(f"choose auto, {', '.join(UNITS)}", param_hint="--split-unit")
    if dataset and index_dir:
        raise typer.BadParameter("give --index-dir or --dataset, not both", param_hint="--dataset")
    settings = make_settings(index_dir=index_dir)
    if dataset:
        prepared = common.dataset_index(settings, dataset, DEFAULT_VECTOR_BACKEND, None,
                                        lambda message: typer.echo(message, err=True))
        settings = make_settings(index_dir=prepared.index_dir)
        corpus = corpus or prepared.corpus_dir
    search = search_config(settings)
    current = Searcher.open(settings.index_dir, search, loader=common.model_loader(settings))
    manifest = current.manifest
    options = FinetuneOptions(
        out=out or Path("models") / f"finetuned-{datetime.now():%Y%m%d-%H%M%S}",
        generator=generator, generator_model=generator_model, queries_per_chunk=queries_per_chunk,
        training=TrainingConfig(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                                max_seq_length=max_seq_length or None, seed=seed),
        policy=GatePolicy(primary=primary, min_gain=min_gain, tolerance=tolerance,
                          require_significance=require_significance),
        dev_fraction=dev_fraction, split_unit=split_unit, round_trip_top=round_trip, eval_dataset=eval_dataset,
        queries_file=queries, corpus_dir=corpus, use_builtin=builtin, overwrite=overwrite,
    )
    champion = common.get_encoder(  # trained in torch, whatever backend the index was built with
        settings.model_copy(update={"encoder_backend": "torch", "encoder_int8": False}), manifest.model.name,
    )
    result = run_finetune(
        build_config(settings), search, champion, options, show_progress=not as_json,
        progress=None if as_json else (lambda message: typer.echo(message, err=True)),
    )
    if as_json:
        print_json(result.summary())
        return
    for comparison in result.decision.sets:
        typer.echo(f"{comparison.name:>16}: nDCG@10 {comparison.before:.4f} → {comparison.after:.4f} "
                   f"({comparison.delta:+.4f}; {comparison.test.wins} wins, {comparison.test.losses} losses, "
                   f"p = {comparison.test.t_pvalue:.3f})")
    if result.promoted:
        typer.echo(f"promoted: {result.model_dir} (report: {result.report_html})")
        typer.echo("rebuild the index with it:")
        typer.echo(f"  {result.rebuild_command}")
    else:
        typer.echo(f"not promoted: keeping the current model {manifest.model.name}")
        for reason in result.decision.reasons:
            typer.echo(f"  - {reason}")
        typer.echo(f"the candidate and its report are in {result.model_dir} (report: {result.report_html})")
