"""``mlsearch search``: one query from the command line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from cli.commands import common
from cli.commands.common import cli_errors, make_settings, print_json


@cli_errors
def search(
    query: Annotated[str, typer.Argument(help="The question.")],
    index_dir: Annotated[Path | None, typer.Option("--index-dir", help="The index directory.")] = None,
    method: Annotated[str, typer.Option("--method", help="dense, lsi, bm25 or hybrid.")] = "dense",
    backend: Annotated[str, typer.Option("--backend", help="faiss, annoy or elasticsearch.")] = "faiss",
    k: Annotated[int, typer.Option("-k", "--k", help="Number of results.")] = 10,
    tags: Annotated[str | None, typer.Option("--tags", help="Comma-separated tags to filter on.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model (the index's by default).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Search the index and print the results."""
    from indexing.layout import current_version_dir
    from indexing.manifest import Manifest
    from search.searcher import Searcher

    settings = make_settings(index_dir=index_dir)
    manifest = Manifest.load(current_version_dir(settings.index_dir))
    needs_model = method in ("dense", "hybrid") or model is not None
    encoder = common.get_encoder(settings, model or manifest.model.name) if needs_model else None
    searcher = Searcher.open(settings.index_dir, settings, encoder=encoder or _NoEncoder(manifest))
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


class _NoEncoder:
    """Stands in for the model when a keyword search needs none (saves loading it)."""

    def __init__(self, manifest: object) -> None:
        model = manifest.model  # type: ignore[attr-defined]
        self.name = model.name
        self.weights_hash = model.weights_hash
        self.dimension = model.dimension
        self.max_seq_length = model.max_seq_length
        self.normalized = model.normalized

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        raise RuntimeError("keyword search does not use the model")

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        raise RuntimeError("keyword search does not use the model")
