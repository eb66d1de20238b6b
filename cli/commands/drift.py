"""``mlsearch drift report``, ``mlsearch drift simulate`` and ``mlsearch drift export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.commands import common
from cli.commands.common import cli_errors, make_settings, print_json
from indexing.backends.configs import drift_config

app = typer.Typer(help="Watch whether the queries still match what the index was built for.",
                  no_args_is_help=True)

StateDir = Annotated[Path | None, typer.Option("--state-dir", help="The service's state directory "
                                               "(default: beside the index).")]
IndexDir = Annotated[Path | None, typer.Option("--index-dir", help="The index directory.")]


def _open_searcher(settings: Any) -> Any:
    from indexing.backends.configs import search_config
    from search.searcher import Searcher

    return Searcher.open(settings.index_dir, search_config(settings), loader=common.model_loader(settings))


def _existing_log(settings: Any) -> Any:
    from drift.log import QueryLog, drift_dir
    from mlsearch.errors import DriftError

    path = drift_dir(settings.resolved_state_dir) / QueryLog.FILE
    if not path.is_file():
        raise DriftError(f"no query log at {path}: serve some queries first, or pass --state-dir")
    return QueryLog(path, settings.drift_log_max_rows, settings.drift_store_text)


@app.command("report")
@cli_errors
def report(
    state_dir: StateDir = None,
    index_dir: IndexDir = None,
    reference: Annotated[Path | None, typer.Option(
        "--reference", help="Compare with these queries (one a line) instead of the stored reference.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for drift.json, report.md and report.html.")] = Path(
        "reports/drift"),
    as_json: Annotated[bool, typer.Option("--json", help="Print drift.json.")] = False,
) -> None:
    """Write the drift report of the logged queries: drift.json, report.md (with PNG plots), report.html."""
    from drift.monitor import DriftEngine, DriftMonitor
    from drift.reference import ReferenceStore, read_queries, reference_from_queries
    from drift.report import report_data, to_json, write_report

    settings = make_settings(state_dir=state_dir, index_dir=index_dir)
    config = drift_config(settings)
    if reference is not None:
        queries = read_queries(reference)
    log = _existing_log(settings)
    if reference is not None:
        measured = reference_from_queries(_open_searcher(settings), queries, source=f"file:{reference}")
        engine: Any = DriftEngine(measured, config)
        engine.observe(log.tail(config.replay))
        status = engine.evaluate()
    else:
        monitor = DriftMonitor(log, ReferenceStore(log.path.parent), config)
        status = monitor.status()
        engine = monitor.engine
    data = report_data(engine, status, config)
    written = write_report(data, out)
    if as_json:
        print_json(to_json(data))
        return
    typer.echo(f"status {status.status}: reference {status.reference_size} queries, window {status.window_size}")
    for reason in status.reasons:
        typer.echo(f"  - {reason}")
    typer.echo(f"wrote {', '.join(str(p) for p in written.values())}")


@app.command("simulate")
@cli_errors
def simulate(
    reference: Annotated[Path, typer.Option("--reference", help="Reference queries, one a line.")],
    stream: Annotated[Path, typer.Option("--stream", help="Queries to replay in order, one a line.")],
    index_dir: IndexDir = None,
    window: Annotated[int | None, typer.Option("--window", help="Window size (MLSEARCH_DRIFT_WINDOW).")] = None,
    min_window: Annotated[int | None, typer.Option(
        "--min-window", help="Queries before a verdict (MLSEARCH_DRIFT_MIN_WINDOW).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Replay a query stream offline and print, per detector, the first query after which it fired.

    Thresholds come from the MLSEARCH_DRIFT_* settings, so that they can be tuned before deploying.
    """
    from drift.features import observe_queries
    from drift.reference import read_queries, reference_from_queries
    from drift.simulate import replay

    reference_queries = read_queries(reference, "reference")
    stream_queries = read_queries(stream, "stream")
    settings = make_settings(index_dir=index_dir, drift_window=window, drift_min_window=min_window)
    config = drift_config(settings)
    searcher = _open_searcher(settings)
    measured = reference_from_queries(searcher, reference_queries, source=f"file:{reference}")
    result = replay(measured, observe_queries(searcher, stream_queries), config)
    final = result.final.to_dict() if result.final else {}
    if as_json:
        print_json({"reference": len(reference_queries), "stream": len(stream_queries),
                    "first_fire": result.first_fire, "statuses": result.statuses, "final": final})
        return
    typer.echo(f"reference {len(reference_queries)} queries, stream {len(stream_queries)} queries, "
               f"window {config.window} (verdicts from query {config.min_window})")
    for name, first in result.first_fire.items():
        when = f"query {first} ({stream_queries[first - 1][:60]!r})" if first else "never"
        typer.echo(f"  {name:8} {when}")
    typer.echo(f"final status: {final.get('status')}")
    for reason in final.get("reasons", []):
        typer.echo(f"  - {reason}")


@app.command("export")
@cli_errors
def export(
    out: Annotated[Path, typer.Option("--out", help="File to write: one query per line, plain text (the "
                                      "format `mlsearch finetune --queries` reads).")],
    state_dir: StateDir = None,
    index_dir: IndexDir = None,
    window: Annotated[bool, typer.Option("--window", help="Only the queries since the drift reference.")] = False,
) -> None:
    """Write the logged queries, one per line in plain text, for `mlsearch finetune --queries FILE`.

    Only queries logged with MLSEARCH_DRIFT_STORE_TEXT=full keep their text; duplicates are written once.
    """
    from drift.reference import ReferenceStore
    from mlsearch.errors import DriftError

    settings = make_settings(state_dir=state_dir, index_dir=index_dir)
    log = _existing_log(settings)
    after = 0
    if window:
        stored = ReferenceStore(log.path.parent).load()
        after = stored.last_id if stored else ReferenceStore(log.path.parent).collecting_after()
    texts = list(dict.fromkeys(" ".join(t.split()) for t in log.texts(after_id=after)))
    if not texts:
        raise DriftError(f"the query log {log.path} keeps no query text: serve with "
                         "MLSEARCH_DRIFT_STORE_TEXT=full to export queries")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(texts) + "\n", encoding="utf-8")
    except OSError as exc:
        raise DriftError(f"cannot write {out}: {exc.strerror or exc}") from None
    typer.echo(f"wrote {len(texts)} queries to {out}")
