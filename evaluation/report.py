"""Write an evaluation's outputs: ``metrics.json``, ``runs/<method>.trec``, ``report.md`` and ``report.html``.

``report.html`` is one self-contained file (plots embedded as base64 PNG), so it opens offline. Also written:
``details.json`` (everything, per query included) and ``plots/*.png`` (the plots that ``report.md`` shows).
"""

from __future__ import annotations

import html
import json
import logging
import os
import shutil
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from evaluation.metrics import METRICS, PRIMARY_METRIC
from evaluation.plots import LABELS, all_plots
from evaluation.runner import LATENCY_KEYS, EvaluationResult
from evaluation.runs import write_trec_run
from mlsearch.configs import FeedbackConfig
from mlsearch.folders import replace_folder
from mlsearch.reporting import (
    Cell,
    html_facts,
    html_figure,
    html_page,
    html_table,
    markdown_facts,
    markdown_image,
    markdown_table,
)
from search.fusion import FusionConfig

logger = logging.getLogger(__name__)
COLUMNS = [*METRICS, *LATENCY_KEYS]
HEADERS = {**LABELS, "latency_ms_p50": "p50 ms", "latency_ms_p95": "p95 ms"}
REPORT_FILES = ("metrics.json", "report.md", "report.html", "details.json")


def write_report(result: EvaluationResult, out_dir: Path) -> dict[str, Path]:
    """Write every output of an evaluation into a folder, replacing an earlier report there.

    The files are written into a temporary folder beside ``out_dir`` and moved into place at the end, so a
    failure leaves any earlier report whole.

    Args:
        result: The evaluation.
        out_dir: The report folder (created; an earlier report in it is replaced).

    Returns:
        Name → path of the main files (``metrics``, ``report_md``, ``report_html``, ``details``, ``runs``).

    Raises:
        FileExistsError: ``out_dir`` exists and holds something other than a report.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "metrics.json").is_file():
        raise FileExistsError(f"{out_dir} exists and is not an evaluation report; not replacing it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        _write_all(result, staging)
        replace_folder(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {
        "metrics": out_dir / "metrics.json", "report_md": out_dir / "report.md",
        "report_html": out_dir / "report.html", "details": out_dir / "details.json", "runs": out_dir / "runs",
    }


def _write_all(result: EvaluationResult, folder: Path) -> None:
    (folder / "metrics.json").write_text(json.dumps(result.metrics_table(), indent=2) + "\n")
    runs = folder / "runs"
    runs.mkdir()
    for method, outcome in result.methods.items():
        write_trec_run(runs / f"{method}.trec", outcome.run, tag=f"mlsearch-{method}")
    (folder / "details.json").write_text(json.dumps(details(result), indent=2, default=str) + "\n")
    plots = all_plots(result)
    (folder / "plots").mkdir()
    for stem, (_, png) in plots.items():
        (folder / "plots" / f"{stem}.png").write_bytes(png)
    (folder / "report.md").write_text(render_markdown(result, plots))
    (folder / "report.html").write_text(render_html(result, plots))


def details(result: EvaluationResult) -> dict[str, Any]:
    """Everything about an evaluation, per query included, as JSON-ready data."""
    return {
        "created_at": result.created_at, "seconds": result.seconds, "dataset": result.dataset,
        "index": result.index, "k": result.k, "backend": result.backend, "level": result.level,
        "scoring": result.scoring, "metric_library": _ranx_version(), "metrics": result.metrics_table(),
        "recall_curves": {m: r.recall_curve for m, r in result.methods.items()},
        "comparisons": [c.to_dict() for c in result.comparisons], "unjudged_queries": result.unjudged,
        "per_query": {m: {"metrics": r.per_query, "latency_ms": r.latency_ms} for m, r in result.methods.items()},
    }


def _ranx_version() -> str:
    try:
        return f"ranx {metadata.version('ranx')}"
    except metadata.PackageNotFoundError:  # pragma: no cover - ranx is a dependency
        return "ranx"


def _facts(result: EvaluationResult) -> list[tuple[str, str]]:
    """The lines that tell two reports apart: date, dataset, model, index, settings."""
    d, i = result.dataset, result.index
    counts = i.get("counts", {})
    origin = f", {i['origin']}" if i.get("origin") else ""
    return [
        ("Date", result.created_at),
        ("Dataset", f"{d['name']} ({d['kind']}, {d['queries']} queries judged, {d['judgements']} judgements; "
                    f"source {d['source']}; sha256 {str(d['fingerprint'])[:12]})"),
        ("Model", f"{i['model']} (weights sha256 {str(i['weights_hash'])[:12]})"),
        ("Index", f"manifest version {i['version']} at {i['path']} (built {i['built_at']}; "
                  f"{counts.get('documents', '?')} documents, {counts.get('chunks', '?')} chunks{origin})"),
        ("Methods", f"{', '.join(result.methods)}; vector backend {result.backend}; k = {result.k}"),
        *([("Hybrid", _hybrid(i))] if "fusion" in i else []),
        ("Scoring", result.scoring),
        ("Metrics", f"{_ranx_version()}; nDCG with linear gain; MAP over the top {result.k}; means over queries"),
        ("Latency", "time for the searcher to rank one query (query embedding, index search, fusion), one at a "
                    "time, measured in this run"),
        ("Significance", f"paired Student's t-test and Wilcoxon signed-rank test on per-query "
                         f"{LABELS[PRIMARY_METRIC]}; significant when the t-test p < 0.05 (not corrected for "
                         f"{len(result.comparisons)} comparisons)"),
    ]


def _hybrid(index: dict[str, Any]) -> str:
    """How ``hybrid`` searched: the fusion, the pseudo-relevance feedback and BM25's smoothing (reports written
    before name fewer)."""
    fusion = FusionConfig.from_dict(index["fusion"]).label()
    feedback = index.get("feedback")
    smoothing = index.get("smoothing") or {}
    graph = f" ({smoothing['graph']} graph)" if smoothing.get("graph") else ""
    smoothed = (f"bm25 smoothed over {smoothing['neighbours']} neighbours at {smoothing['weight']:g}{graph}"
                if smoothing.get("applied") else "bm25 not smoothed")
    return f"{fusion}; {FeedbackConfig(**feedback).label() if feedback else 'prf off'}; {smoothed}"


def _best(result: EvaluationResult) -> dict[str, float]:
    best: dict[str, float] = {}
    for column in COLUMNS:
        values = [r.metrics[column] for r in result.methods.values()]
        best[column] = min(values) if column in LATENCY_KEYS else max(values)
    return best


def _cell(column: str, value: float) -> str:
    return f"{value:.1f}" if column in LATENCY_KEYS else f"{value:.3f}"


def _p(value: float) -> str:
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _metric_cells(result: EvaluationResult) -> dict[str, list[Cell]]:
    """Each method's metric cells (``best`` on the best value of each column when methods are compared)."""
    best = _best(result)
    return {
        method: [Cell(_cell(c, outcome.metrics[c]),
                      "num best" if outcome.metrics[c] == best[c] and len(result.methods) > 1 else "num")
                 for c in COLUMNS]
        for method, outcome in result.methods.items()
    }


def metrics_markdown(result: EvaluationResult) -> str:
    """The metrics table in Markdown (best value of each column in bold)."""
    rows = [[method] + [f"**{c.text}**" if "best" in c.classes else c.text for c in cells]
            for method, cells in _metric_cells(result).items()]
    return markdown_table(["method", *(HEADERS[c] for c in COLUMNS)], rows, align="l" + "r" * len(COLUMNS))


COMPARISON_HEADER = ["A", "B", "mean A", "mean B", "A wins / losses / ties", "t-test p", "Wilcoxon p", "significant"]
COMPARISON_ALIGN = "llrrrrrl"


def _comparison_rows(result: EvaluationResult) -> list[list[str]]:
    return [[c.a, c.b, f"{c.mean_a:.3f}", f"{c.mean_b:.3f}", f"{c.wins} / {c.losses} / {c.ties}",
             _p(c.t_pvalue), _p(c.wilcoxon_pvalue), "yes" if c.significant else "no"]
            for c in result.comparisons]


def _comparisons_title() -> str:
    return f"Paired significance tests ({LABELS[PRIMARY_METRIC]} per query)"


def render_markdown(result: EvaluationResult, plots: dict[str, tuple[str, bytes]]) -> str:
    """The Markdown report (plots referenced from ``plots/``)."""
    out = [f"# Retrieval evaluation: {result.dataset['name']}", ""]
    out += markdown_facts(_facts(result))
    out += ["", "## Metrics", "", metrics_markdown(result), ""]
    if result.unjudged:
        out += [f"{len(result.unjudged)} answer-span queries match no chunk and are left out: "
                f"{', '.join(result.unjudged[:20])}{' …' if len(result.unjudged) > 20 else ''}", ""]
    if result.comparisons:
        out += [f"## {_comparisons_title()}", "",
                markdown_table(COMPARISON_HEADER, _comparison_rows(result), align=COMPARISON_ALIGN), ""]
    out += ["## Plots", ""]
    out += [markdown_image(caption, f"plots/{stem}.png") + "\n" for stem, (caption, _) in plots.items()]
    out += ["Runs (TREC format) are in `runs/`; per-query scores and latencies in `details.json`.", ""]
    return "\n".join(out)


def render_html(result: EvaluationResult, plots: dict[str, tuple[str, bytes]]) -> str:
    """The HTML report: one file, inline CSS, plots embedded as ``data:`` URIs."""
    title = f"Retrieval evaluation: {result.dataset['name']}"
    parts = [f"<h1>{html.escape(title)}</h1>", html_facts(_facts(result)), "<h2>Metrics</h2>",
             html_table(["method", *(HEADERS[c] for c in COLUMNS)],
                        [[method, *cells] for method, cells in _metric_cells(result).items()])]
    if result.unjudged:
        parts.append(f"<p>{len(result.unjudged)} answer-span queries match no chunk and are left out.</p>")
    if result.comparisons:
        rows = [[Cell(v, "num") if a == "r" else v for v, a in zip(row, COMPARISON_ALIGN, strict=True)]
                for row in _comparison_rows(result)]
        parts += [f"<h2>{html.escape(_comparisons_title())}</h2>", html_table(COMPARISON_HEADER, rows)]
    parts.append("<h2>Plots</h2>")
    parts += [html_figure(png, caption) for caption, png in plots.values()]
    return html_page(title, parts)


def summary_json(result: EvaluationResult) -> dict[str, Any]:
    """What ``mlsearch eval --json`` prints: the metrics, and what they were measured on."""
    return {"dataset": result.dataset["name"], "model": result.index["model"],
            "index_version": result.index["version"], "created_at": result.created_at,
            "metrics": result.metrics_table(), "comparisons": [asdict(c) for c in result.comparisons]}
