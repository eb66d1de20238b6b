"""``mlsearch rerank-train``: train a cross-encoder reranker on synthetic queries; keep it only if it helps."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from cli.commands import common
from cli.commands.common import cli_errors, make_settings, print_json


@cli_errors
def rerank_train(
    index_dir: Annotated[Path | None, typer.Option("--index-dir", help="The index to train on.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder of the promoted reranker (default: models/reranker-<time>).")
    ] = None,
    base_model: Annotated[
        Path | None, typer.Option("--base-model", help="Local model folder to start from (default: bundled MiniLM).")
    ] = None,
    max_steps: Annotated[int, typer.Option("--max-steps", min=1, help="Upper bound on training steps.")] = 150,
    train_queries: Annotated[int, typer.Option("--train-queries", min=4)] = 400,
    dev_queries: Annotated[int, typer.Option("--dev-queries", min=1)] = 150,
    top_n: Annotated[int, typer.Option("--top-n", min=1, help="Results the reranker rescores.")] = 20,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the training queries.")] = 3,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2, help="Training queries per step.")] = 16,
    learning_rate: Annotated[float, typer.Option("--learning-rate", min=0.0)] = 5e-5,
    max_length: Annotated[int, typer.Option("--max-length", min=16, help="Tokens per (query, passage).")] = 192,
    min_gain: Annotated[float, typer.Option("--min-gain", help="nDCG@10 rise needed on the dev queries.")] = 0.01,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Train a cross-encoder on synthetic queries with hard negatives; the gate promotes it only on a gain."""
    from finetune.gate import GatePolicy
    from finetune.reranker import DEV_SET, RerankerOptions, run_reranker_training
    from indexing.backends.configs import search_config
    from indexing.layout import current_version_dir
    from indexing.manifest import Manifest
    from search.searcher import Searcher

    settings = make_settings(index_dir=index_dir)
    manifest = Manifest.load(current_version_dir(settings.index_dir))
    encoder = common.get_encoder(settings, manifest.model.name)
    options = RerankerOptions(
        out=out or Path("models") / f"reranker-{datetime.now():%Y%m%d-%H%M%S}", base_model=base_model,
        max_train_queries=train_queries, max_dev_queries=dev_queries, top_n=top_n, max_steps=max_steps, seed=seed,
        epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, max_length=max_length,
        policy=GatePolicy(primary=DEV_SET, min_gain=min_gain),
    )
    searcher = Searcher.open(settings.index_dir, search_config(settings), encoder=encoder)
    try:
        result = run_reranker_training(searcher, options, show_progress=not as_json,
                                       progress=None if as_json else (lambda m: typer.echo(m, err=True)))
    finally:
        searcher.close()
    if as_json:
        print_json(result.summary())
        return
    for comparison in result.decision.sets:
        typer.echo(f"{comparison.name}: nDCG@10 {comparison.before:.4f} → {comparison.after:.4f} "
                   f"({comparison.delta:+.4f}; {comparison.test.wins} wins, {comparison.test.losses} losses)")
    typer.echo(f"blend weight {result.weight:.1f} (the cross-encoder's share of the head's score)")
    verdict = "promoted" if result.promoted else "not promoted"
    typer.echo(f"{verdict}: {result.model_dir}" + (" (named in the index manifest)" if result.promoted else ""))
    for reason in result.decision.reasons:
        typer.echo(f"  - {reason}")
