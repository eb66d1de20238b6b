"""The fine-tuning report: ``report.md`` and a self-contained ``report.html`` (plots embedded, opens offline).

Both show the gate's decision and reasons, the before/after table with paired tests, the per-query wins and
losses (a chart, and the largest of each with the query), what the model was trained on, and sample queries.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from finetune.card import GATE_HEADER, gate_rows, metrics_table
from finetune.gate import GateDecision, SetComparison
from finetune.queries import SyntheticQuery
from finetune.split import describe_split
from mlsearch.reporting import (
    TIE_TOLERANCE,
    Cell,
    figure_png,
    html_facts,
    html_figure,
    html_list,
    html_page,
    html_table,
    markdown_facts,
    markdown_image,
    markdown_table,
    win_loss_bars,
)

PLOTS_DIR = "report-plots"
EPS = TIE_TOLERANCE


def before_after_plot(decision: GateDecision) -> bytes:
    """Mean nDCG@10 of the champion and the challenger on every gate set."""
    figure = Figure(figsize=(7, 3.4))
    axes = figure.add_subplot()
    names = [s.name for s in decision.sets]
    x = np.arange(len(names))
    for offset, label, values, color in (
        (-0.2, "champion (current)", [s.before for s in decision.sets], "#8C8C8C"),
        (0.2, "challenger (fine-tuned)", [s.after for s in decision.sets], "#4C72B0"),
    ):
        bars = axes.bar(x + offset, values, 0.4, label=label, color=color)
        axes.bar_label(bars, fmt="%.3f", fontsize=7, padding=1)
    axes.set_xticks(x, names)
    axes.set_ylim(0, 1.1)
    axes.set_ylabel("mean nDCG@10")
    axes.set_title("Before and after, per gate set")
    axes.legend(fontsize=8, loc="upper left", ncols=2)
    axes.grid(axis="y", alpha=0.3)
    return figure_png(figure)


def win_loss_plot(decision: GateDecision) -> bytes:
    """Per-query nDCG@10 difference (challenger − champion), sorted, one panel per gate set."""
    sets = decision.sets
    figure = Figure(figsize=(8, 2.6 * len(sets)))
    for i, comparison in enumerate(sets, start=1):
        axes = figure.add_subplot(len(sets), 1, i)
        win_loss_bars(axes, [comparison.challenger[q] - comparison.champion[q] for q in comparison.champion])
        axes.set_ylabel("Δ nDCG@10")
        axes.set_title(f"{comparison.name}: {comparison.test.wins} wins, {comparison.test.losses} losses, "
                       f"{comparison.test.ties} ties (paired t-test p = {comparison.test.t_pvalue:.3f})", fontsize=9)
    figure.axes[-1].set_xlabel("queries, sorted by challenger − champion")
    return figure_png(figure)


def largest_changes(comparison: SetComparison, n: int = 5) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """The ``n`` largest wins and losses of the challenger: (query id, difference) pairs."""
    diffs = sorted(((q, comparison.challenger[q] - comparison.champion[q]) for q in comparison.champion),
                   key=lambda item: item[1])
    losses = [item for item in diffs[:n] if item[1] < -EPS]
    wins = [item for item in reversed(diffs[-n:]) if item[1] > EPS]
    return wins, losses


def _facts(lineage: dict[str, Any], model_dir: Path) -> list[tuple[str, str]]:
    data, gen, split, train = lineage["data"], lineage["generator"], lineage["split"], lineage["training"]
    logged = gen.get("logged_queries") or {}
    facts = [
        ("decision", "promoted" if lineage["promoted"] else "not promoted: the current model is kept"),
        ("candidate folder", str(model_dir)),
        ("base model", f"{lineage['base_model']['name']} ({lineage['base_model']['weights_hash'][:12]})"),
        ("index", f"{data['index_dir']} (version {data['index_version']}, {data['chunks']} chunks)"),
        ("corpus", f"{data['corpus']} ({data['documents']} documents)"),
        ("generator", f"{gen['name']}, {gen['queries_per_chunk']} per chunk: {gen['generated']} generated "
                      f"{gen['generated_by_kind']}, {gen['kept']} kept (removed {gen['removed']})"),
        ("split", describe_split(split)),
        ("training", f"{train['result_examples']} examples, {train['result_steps']} steps, "
                     f"{train['epochs']} epoch(s), batch {train['batch_size']}, lr {train['learning_rate']}, "
                     f"max {train['max_seq_length']} tokens, loss {train['result_train_loss']}, "
                     f"{train['result_seconds']} s"),
        ("time", ", ".join(f"{k} {v} s" for k, v in lineage["timings_s"].items())),
    ]
    if logged.get("file"):
        facts.insert(5, ("logged queries", f"{logged['file']}: {logged['given']} given, {logged['labelled']} "
                                           f"pseudo-labelled, {logged.get('held_out_dropped', 0)} on held-out "
                                           "documents dropped"))
    return facts


def _change_lines(comparison: SetComparison) -> list[tuple[str, str, float]]:
    wins, losses = largest_changes(comparison)
    rows = [("win", q, d) for q, d in wins] + [("loss", q, d) for q, d in losses]
    return [(kind, comparison.texts.get(q, q), d) for kind, q, d in rows]


def render_markdown(
    lineage: dict[str, Any], decision: GateDecision, samples: Sequence[SyntheticQuery], model_dir: Path
) -> str:
    """The Markdown report (plots referenced from ``report-plots/``)."""
    out = [f"# Fine-tuning report: {_status(decision)}", ""]
    out += markdown_facts(_facts(lineage, model_dir))
    out += ["", "## Gate decision", ""] + [f"- {r}" for r in decision.reasons]
    out += ["", "## Before / after (nDCG@10 per gate set, paired tests over queries)", "",
            metrics_table(decision.summary()), "",
            markdown_image("Before and after", f"{PLOTS_DIR}/before_after.png"), "",
            "## Per-query wins and losses", "", markdown_image("Wins and losses", f"{PLOTS_DIR}/win_loss.png"), ""]
    for comparison in decision.sets:
        lines = _change_lines(comparison)
        if lines:
            out += [f"### {comparison.name}", "",
                    markdown_table(CHANGE_HEADER, [[kind, text, f"{d:+.3f}"] for kind, text, d in lines],
                                   align="llr"), ""]
    out += ["## Sample synthetic queries", "", markdown_table(SAMPLE_HEADER, _sample_rows(samples))]
    out += ["", "The full lineage is in `mlsearch_lineage.json`.", ""]
    return "\n".join(out)


CHANGE_HEADER = ["change", "query", "Δ nDCG@10"]
SAMPLE_HEADER = ["kind", "query", "document"]
_CSS = ".promoted{color:#2e7d32}.rejected{color:#c62828}td.win{color:#2e7d32}td.loss{color:#c62828}"


def _status(decision: GateDecision) -> str:
    return "promoted" if decision.promoted else "not promoted"


def _sample_rows(samples: Sequence[SyntheticQuery]) -> list[list[str]]:
    return [[q.kind, q.text, str(q.doc_id)] for q in samples]


def render_html(
    lineage: dict[str, Any], decision: GateDecision, samples: Sequence[SyntheticQuery], model_dir: Path,
    plots: dict[str, bytes],
) -> str:
    """The HTML report: one file, inline CSS, plots embedded as base64 ``data:`` URIs."""
    status = _status(decision)
    gate: list[list[str | Cell]] = [[row[0], *(Cell(value, "num") for value in row[1:])]
                                    for row in gate_rows(decision.summary())]
    parts = [
        f'<h1>Fine-tuning report: <span class="{"promoted" if decision.promoted else "rejected"}">{status}</span></h1>',
        html_facts(_facts(lineage, model_dir)),
        "<h2>Gate decision</h2>", html_list(decision.reasons),
        "<h2>Before / after</h2>", html_table(GATE_HEADER, gate),
        html_figure(plots["before_after"], "Before and after, per gate set"),
        "<h2>Per-query wins and losses</h2>",
        html_figure(plots["win_loss"], "Per-query nDCG@10 difference, challenger − champion"),
    ]
    for comparison in decision.sets:
        lines = _change_lines(comparison)
        if lines:
            parts += [f"<h3>{html.escape(comparison.name)}: largest changes</h3>",
                      html_table(CHANGE_HEADER, [[Cell(kind, kind), text, Cell(f"{d:+.3f}", "num")]
                                                 for kind, text, d in lines])]
    parts += ["<h2>Sample synthetic queries</h2>", html_table(SAMPLE_HEADER, _sample_rows(samples)),
              "<p>The full lineage is in <code>mlsearch_lineage.json</code>.</p>"]
    return html_page(f"Fine-tuning report: {status}", parts, css=_CSS)


def write_report(
    folder: Path, lineage: dict[str, Any], decision: GateDecision, samples: Sequence[SyntheticQuery],
    model_dir: Path | None = None,
) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and the plots (``report-plots/*.png``) into a folder.

    Args:
        folder: Where to write (the candidate's folder).
        lineage: The run's lineage (:mod:`finetune.card`).
        decision: The gate's decision.
        samples: A few synthetic queries to show.
        model_dir: The folder named in the report as the candidate's (``folder`` by default).

    Returns:
        ``markdown`` and ``html`` → their paths.
    """
    folder = Path(folder)
    model_dir = model_dir or folder
    plots = {"before_after": before_after_plot(decision), "win_loss": win_loss_plot(decision)}
    (folder / PLOTS_DIR).mkdir(parents=True, exist_ok=True)
    for stem, png in plots.items():
        (folder / PLOTS_DIR / f"{stem}.png").write_bytes(png)
    markdown = folder / "report.md"
    markdown.write_text(render_markdown(lineage, decision, samples, model_dir))
    page = folder / "report.html"
    page.write_text(render_html(lineage, decision, samples, model_dir, plots))
    return {"markdown": markdown, "html": page}
