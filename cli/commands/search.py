"""``mlsearch search``: one query from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.commands import common
from cli.commands.common import cli_errors, make_settings, print_json
from mlsearch.catalog import DEFAULT_METHOD, DEFAULT_VECTOR_BACKEND, METHOD_NAMES, VECTOR_BACKEND_NAMES


@cli_errors
def search(
    query: Annotated[str, typer.Argument(help="The question.")],
    index_dir: Annotated[Path | None, typer.Option("--index-dir", help="The index directory.")] = None,
    method: Annotated[str, typer.Option("--method", help=", ".join(METHOD_NAMES))] = DEFAULT_METHOD,
    backend: Annotated[str, typer.Option("--backend", help=", ".join(VECTOR_BACKEND_NAMES))] = DEFAULT_VECTOR_BACKEND,
    k: Annotated[int, typer.Option("-k", "--k", help="Number of results.")] = 10,
    tags: Annotated[str | None, typer.Option("--tags", help="Comma-separated tags to filter on.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model (the index's by default).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Search the index and print the results (the model is loaded only when the method needs it)."""
    from indexing.backends.configs import search_config
    from search.searcher import Searcher

    settings = make_settings(index_dir=index_dir)
    searcher = Searcher.open(settings.index_dir, search_config(settings), model=model,
                             loader=common.model_loader(settings))
    tag_list = [t.strip() for t in tags.split(",") if t.strip()] if tags else None
    result = searcher.search(query, k=k, method=method, backend=backend, tags=tag_list)
    if as_json:
        print_json({
            "query": query, "method": result.method, "took_ms": result.took_ms,
            "results": [
                {key: value for key, value in hit.to_dict().items() if key != "position"} for hit in result.hits
            ],
        })
        return
    if not result.hits:
        typer.echo("no results")
    for hit in result.hits:
        where = f"{hit.title}" + (f" > {hit.heading}" if hit.heading else "")
        place = f", {hit.location}" if hit.location else ""
        typer.echo(f"{hit.rank:>3}. [{hit.score:.4f}] {where}  ({hit.doc_id}{place})")
        typer.echo(f"     {hit.snippet}")

