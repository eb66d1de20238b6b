"""``mlsearch index build`` and ``mlsearch index inspect``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.commands import common
from cli.commands.common import cli_errors, make_settings, print_json
from indexing.build import build_index
from indexing.embedding import check_device
from indexing.layout import current_version_dir
from indexing.manifest import Manifest
from indexing.store import ChunkStore

app = typer.Typer(help="Build and inspect indexes.", no_args_is_help=True)


@app.command("build")
@cli_errors
def build(
    corpus: Annotated[Path | None, typer.Option("--corpus", help="Folder of Markdown/text files.")] = None,
    index_dir: Annotated[Path | None, typer.Option("--index-dir", help="Where the index is published.")] = None,
    backends: Annotated[
        str | None, typer.Option("--backends", help="Comma-separated: faiss,annoy,lsi,bm25,elasticsearch.")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Sentence-transformers name or path.")] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="cpu, cuda, cuda:N or mps (MLSEARCH_DEVICE).")
    ] = None,
    encoder_backend: Annotated[
        str | None, typer.Option("--encoder-backend", help="torch, openvino or onnx (MLSEARCH_ENCODER_BACKEND).")
    ] = None,
    int8: Annotated[
        bool | None, typer.Option("--int8/--no-int8", help="int8 model (openvino, onnx; MLSEARCH_ENCODER_INT8).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Texts per encoding batch (MLSEARCH_BATCH_SIZE).")
    ] = None,
    processes: Annotated[
        int | None, typer.Option("--processes", help="Torch: encoding processes (MLSEARCH_ENCODE_PROCESSES).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Build the index over a corpus (incremental: unchanged chunks reuse their embeddings)."""
    from indexing.backends.registry import parse_backends

    settings = make_settings(
        corpus_dir=corpus, index_dir=index_dir, model=model, device=device, encoder_backend=encoder_backend,
        encoder_int8=int8, batch_size=batch_size, encode_processes=processes,
    )
    names = parse_backends(backends) if backends else settings.backends
    if not settings.corpus_dir.exists():
        from mlsearch.errors import CorpusError

        raise CorpusError(f"corpus folder not found: {settings.corpus_dir}")
    check_device(settings.device, settings.encoder_backend)  # before anything is loaded or written
    encoder = common.get_encoder(settings)
    summary = build_index(
        settings, encoder, backends=names, show_progress=not as_json,
        progress=None if as_json else (lambda message: typer.echo(message, err=True)),
    )
    if as_json:
        print_json(summary.to_dict())
        return
    typer.echo(
        f"built {summary.index_dir} (version {summary.version}): {summary.documents} documents, "
        f"{summary.chunks} chunks ({summary.embedded} embedded, {summary.reused} reused"
        f"{f', {summary.resumed} of them resumed from a stopped build' if summary.resumed else ''}), "
        f"max {summary.max_tokens} tokens, backends {','.join(summary.backends)} in {summary.seconds:.1f}s"
    )
    for skipped in summary.skipped:
        typer.echo(f"skipped {skipped['path']}: {skipped['reason']}", err=True)


@app.command("inspect")
@cli_errors
def inspect(
    index_dir: Annotated[Path | None, typer.Option("--index-dir", help="The index directory.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show an index's manifest and chunk statistics."""
    settings = make_settings(index_dir=index_dir)
    directory = current_version_dir(settings.index_dir)
    manifest = Manifest.load(directory)
    store = ChunkStore(directory / ChunkStore.FILE)
    stats = store.token_stats()
    data = {**manifest.model_dump(), **stats, "directory": str(directory)}
    if as_json:
        print_json(data)
        return
    typer.echo(f"index {settings.index_dir} -> {directory.name}")
    model = manifest.model
    kind = "normalized" if model.normalized else "unnormalized"
    typer.echo(f"  model      {model.name} ({model.dimension}d, {kind}, max {model.max_seq_length} tokens)")
    typer.echo(f"  built      {manifest.built_at} in {manifest.build_seconds:.1f}s")
    typer.echo(f"  corpus     {manifest.corpus['path']} ({manifest.corpus['documents']} documents)")
    typer.echo(f"  chunks     {stats['chunks']} (max {stats['max_tokens']} tokens, mean {stats['mean_tokens']})")
    typer.echo(f"  backends   {', '.join(manifest.backends)}")
