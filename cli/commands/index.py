"""``mlsearch index build [--watch]``, ``index add``, ``index remove`` and ``index inspect``."""

from __future__ import annotations

import time
from contextlib import closing
from pathlib import Path
from typing import Annotated

import typer

from cli.commands import common
from cli.commands.common import cli_errors, make_settings, print_json
from indexing.backends.configs import build_config
from indexing.build import build_index
from indexing.documents import corpus_files, document_id_for
from indexing.embedding import Encoder, check_device
from indexing.layout import current_version_dir
from indexing.loaders.dispatch import load_bytes, with_tags
from indexing.manifest import Manifest
from indexing.store import ChunkStore
from indexing.updates import DocumentUpdater, UpdateSummary
from indexing.watch import FolderWatcher, Snapshot, snapshot
from mlsearch.errors import DocumentError
from mlsearch.settings import Settings

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
        str | None, typer.Option(
            "--encoder-backend",
            help="torch, openvino or onnx (MLSEARCH_ENCODER_BACKEND; unset: the index's, else openvino int8).",
        ),
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
    watch: Annotated[
        bool, typer.Option("--watch", help="Then follow the folder and update the index as files change.")
    ] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.01, help="Seconds between polls (--watch).")] = 2.0,
    max_polls: Annotated[
        int | None, typer.Option("--max-polls", min=1, help="Stop watching after this many polls.")
    ] = None,
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
    chosen = common.chosen_encoder(settings)  # unset: the current index's backend and int8 flag, else the defaults
    check_device(chosen.device, chosen.backend or "torch")  # before anything is loaded or written
    encoder = common.get_encoder(settings)
    before = snapshot(settings.corpus_dir) if watch else None  # changes during the build are picked up after it
    summary = build_index(
        build_config(settings), encoder, backends=names, show_progress=not as_json,
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
    if watch:
        _watch(settings, encoder, interval, max_polls, before)


def _updater(settings: Settings, encoder: Encoder | None = None) -> DocumentUpdater:
    """An updater over the index; the model is the index's own, loaded only when an update needs it."""
    loaded: list[Encoder] = [encoder] if encoder is not None else []

    def model() -> Encoder:
        if not loaded:
            manifest = Manifest.load(current_version_dir(settings.index_dir))
            loaded.append(common.get_encoder(settings, model=manifest.model.name))
        return loaded[0]

    return DocumentUpdater(build_config(settings), model, coalesce_s=0)


def _report(summary: UpdateSummary | None, as_json: bool = False) -> None:
    if as_json:
        print_json(summary.to_dict() if summary else None)
        return
    if summary is None:
        typer.echo("index unchanged")
        return
    typer.echo(
        f"updated to version {summary.version}: {len(summary.changed)} written, {len(summary.deleted)} deleted, "
        f"{summary.chunks} chunks ({summary.embedded} embedded, {summary.reused} reused) in {summary.seconds:.1f}s"
    )


def _watch(
    settings: Settings, encoder: Encoder, interval: float, max_polls: int | None, initial: Snapshot | None
) -> None:
    updater = _updater(settings, encoder)
    watcher = FolderWatcher(settings.corpus_dir, updater, initial)
    typer.echo(f"watching {settings.corpus_dir} every {interval:g}s (Ctrl-C to stop)", err=True)
    polls = 0
    try:
        while max_polls is None or polls < max_polls:
            time.sleep(interval)
            polls += 1
            result = watcher.poll()
            for path, reason in result.skipped:
                typer.echo(f"skipped {path}: {reason}", err=True)
            if result.changed:
                _report(updater.run_pending())
                updater.refit()
    finally:
        updater.close()


@app.command("add")
@cli_errors
def add(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to add (or replace) in the index.")],
    tags: Annotated[str | None, typer.Option("--tags", help="Comma-separated tags for every added file.")] = None,
    index_dir: Annotated[Path | None, typer.Option("--index-dir", help="The index to update.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Add files to a built index without rebuilding it (only their chunks are embedded)."""
    settings = make_settings(index_dir=index_dir)
    Manifest.load(current_version_dir(settings.index_dir))  # a clear error when there is no index
    with closing(_updater(settings)) as updater:
        for path in paths:
            if not path.exists():
                raise DocumentError(f"{path}: no such file or folder")
            root = path.parent if path.is_file() else path
            for file in corpus_files(path):
                data = file.read_bytes()
                loaded = with_tags(load_bytes(data, str(file), document_id_for(file, root)), tags)
                for note in loaded.notes:
                    typer.echo(f"{file}: {note}", err=True)
                receipt = updater.put(loaded.document)
                if not as_json:
                    typer.echo(f"stored {receipt.doc_id}", err=True)
        summary = updater.run_pending()
        updater.refit()  # a one-shot command leaves the index equal to a clean rebuild
    _report(summary, as_json)


@app.command("remove")
@cli_errors
def remove(
    doc_ids: Annotated[list[str], typer.Argument(help="Ids of the documents to delete.")],
    index_dir: Annotated[Path | None, typer.Option("--index-dir", help="The index to update.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Delete documents from a built index without rebuilding it."""
    settings = make_settings(index_dir=index_dir)
    Manifest.load(current_version_dir(settings.index_dir))
    with closing(_updater(settings)) as updater:
        for doc_id in doc_ids:
            updater.delete(doc_id)
        summary = updater.run_pending()
        updater.refit()
    _report(summary, as_json)


@app.command("inspect")
@cli_errors
def inspect(
    index_dir: Annotated[Path | None, typer.Option("--index-dir", help="The index directory.")] = None,
    memory: Annotated[
        bool, typer.Option("--memory", help="Also load each backend and measure the memory it holds.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show an index's manifest, chunk statistics, disk (and memory) per backend, and advice past a size."""
    from indexing.neighbours import graph_info
    from indexing.sizes import backend_disk, backend_memory, scale_advice

    settings = make_settings(index_dir=index_dir)
    directory = current_version_dir(settings.index_dir)
    manifest = Manifest.load(directory)
    store = ChunkStore(directory / ChunkStore.FILE)
    stats = store.token_stats()
    disk = backend_disk(directory, manifest)
    ram = backend_memory(directory, manifest, build_config(settings).backend_configs) if memory else {}
    advice = scale_advice(manifest, int(stats["chunks"]))
    graph = graph_info(directory)
    data = {**manifest.model_dump(), **stats, "directory": str(directory), "disk_bytes": disk,
            "memory_bytes": ram if memory else None, "neighbour_graph": graph, "advice": advice}
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
    for name, size in disk.items():
        described = manifest.backends.get(name, {})
        detail = ", ".join(f"{k} {described[k]}" for k in ("factory", "quantization") if k in described)
        held = f", {ram[name] / 2**20:.1f} MiB in memory" if name in ram else ""
        typer.echo(f"  {name:<14} {size / 2**20:9.1f} MiB on disk{held}{f' ({detail})' if detail else ''}")
    if graph is not None:
        typer.echo(f"  graph      {graph['k']} nearest chunks per chunk for BM25 smoothing ({graph['method']}, "
                   f"{graph['seconds']} s), {int(graph['disk_bytes']) / 2**20:.1f} MiB on disk")  # type: ignore[call-overload]
    for line in advice:
        typer.echo(f"  advice     {line}")
