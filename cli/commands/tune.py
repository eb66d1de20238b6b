"""``mlsearch tune``: choose the index's hybrid fusion and document scoring on synthetic queries, without labels."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.commands import common
from cli.commands.common import cli_errors, make_settings, print_json
from mlsearch.catalog import DEFAULT_VECTOR_BACKEND
from mlsearch.settings import Settings

if TYPE_CHECKING:
    from finetune.tune import TuneResult
    from indexing.embedding import Encoder


@cli_errors
def tune(
    index_dir: Annotated[Path | None, typer.Option("--index-dir", help="The index to tune.")] = None,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", help="Tune the evaluation index of this dataset instead (as `mlsearch eval` "
                                       "finds or builds it); its judgements are never read."),
    ] = None,
    backend: Annotated[str, typer.Option("--backend", help="Vector backend of dense retrieval.")] = (
        DEFAULT_VECTOR_BACKEND
    ),
    queries: Annotated[int, typer.Option("--queries", min=1, help="Synthetic dev queries.")] = 300,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    min_gain: Annotated[float, typer.Option("--min-gain", help="Mean nDCG@10 gain a variant needs.")] = 0.005,
    keyword: Annotated[bool, typer.Option("--keyword/--no-keyword", help="Also choose the BM25 options (analyzer, "
                                          "k1, b, RM3).")] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Measure and print; leave the manifest.")] = False,
    model: Annotated[str | None, typer.Option("--model", help="Sentence-transformers name or path.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Try BM25 options, fusion variants (weighted RRF, min-max and z-score convex) and document scorings on
    synthetic dev queries, and publish the winners as a new index version (hybrid search then uses them)."""
    from finetune.tune import write_tuning

    settings = make_settings(index_dir=index_dir, model=model)
    say = functools.partial(typer.echo, err=True)
    target = (common.dataset_index(settings, dataset, backend, model, say).index_dir if dataset
              else settings.index_dir)
    result = run_tune(settings, target, backend, queries, seed, min_gain, model, say if not as_json else None,
                      keyword=keyword)
    if not dry_run:
        write_tuning(target, result, keep=settings.keep_versions)
    if as_json:
        print_json({**result.summary(), "index_dir": str(target), "written": not dry_run})
        return
    print_result(result)
    typer.echo(f"{'not written (--dry-run)' if dry_run else 'written to the manifest of'} {target}")


def run_tune(
    settings: Settings, index_dir: Path, backend: str, queries: int, seed: int, min_gain: float,
    model: str | None, say: Callable[[str], None] | None, encoder: Encoder | None = None, keyword: bool = True,
) -> TuneResult:
    """Open the index and tune it (with ``encoder``, or the model loaded once)."""
    from finetune.tune import tune as run
    from indexing.backends.configs import search_config
    from indexing.layout import current_version_dir
    from indexing.manifest import Manifest
    from search.searcher import Searcher

    manifest = Manifest.load(current_version_dir(index_dir))
    encoder = encoder or common.get_encoder(settings, model or manifest.model.name)
    searcher = Searcher.open(index_dir, search_config(settings), encoder=encoder)
    try:
        return run(searcher, backend=backend, size=queries, seed=seed, min_gain=min_gain,
                   show_progress=say is not None, progress=say, keyword=keyword)
    finally:
        searcher.close()


def print_result(result: TuneResult) -> None:
    """The choices, the reasons and the best variants, as text."""
    typer.echo(f"dev queries: {', '.join(f'{n} {k}' for k, n in result.queries.items())}")
    kinds = list(result.queries)
    typer.echo("| variant | mean nDCG@10 | " + " | ".join(kinds) + " |")
    typer.echo("|---|---:|" + "---:|" * len(kinds))
    for t in [result.champion, *result.fusion_trials[:12]]:
        typer.echo(f"| {t.name} | {t.score:.4f} | " + " | ".join(f"{t.by_kind.get(k, 0):.4f}" for k in kinds) + " |")
    for t in result.bm25_trials:
        typer.echo(f"| {t.name} (tuned hybrid) | {t.score:.4f} | "
                   + " | ".join(f"{t.by_kind.get(k, 0):.4f}" for k in kinds) + " |")
    for t in result.doc_trials:
        typer.echo(f"| documents: {t.name} | {t.score:.4f} | "
                   + " | ".join(f"{t.by_kind.get(k, 0):.4f}" for k in kinds) + " |")
    typer.echo(f"fusion: {result.fusion.label()}")
    typer.echo(f"document scoring: {result.doc_scoring.label()}")
    if result.bm25 is not None:
        typer.echo(f"bm25: {', '.join(f'{k}={v}' for k, v in asdict(result.bm25).items())}")
    for reason in result.reasons:
        typer.echo(f"  - {reason}")
