"""The fine-tuning report: ``report.md`` and a self-contained ``report.html`` (plots embedded, opens offline).

Both show the gate's decision and reasons, the before/after table with paired tests, the per-query wins and
losses (a chart, and the largest of each with the query), what the model was trained on, and sample queries.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from finetune.card import metrics_table
from finetune.gate import GateDecision, SetComparison
from finetune.queries import SyntheticQuery
from finetune.split import describe_split

PLOTS_DIR = "report-plots"
WIN, LOSS, TIE = "#55A868", "#C44E52", "#999999"
EPS = 1e-12


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


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
    return _png(figure)


def win_loss_plot(decision: GateDecision) -> bytes:
    """Per-query nDCG@10 difference (challenger − champion), sorted, one panel per gate set."""
    sets = decision.sets
    figure = Figure(figsize=(8, 2.6 * len(sets)))
    for i, comparison in enumerate(sets, start=1):
        axes = figure.add_subplot(len(sets), 1, i)
        diff = np.sort([comparison.challenger[q] - comparison.champion[q] for q in comparison.champion])[::-1]
        colors = [WIN if d > EPS else LOSS if d < -EPS else TIE for d in diff]
        axes.bar(np.arange(len(diff)), diff, width=1.0, color=colors)
        axes.axhline(0, color="black", linewidth=0.8)
        axes.set_xlim(-0.5, max(len(diff), 1) - 0.5)
        axes.set_ylim(-1.05, 1.05)
        axes.set_ylabel("Δ nDCG@10")
        axes.set_title(f"{comparison.name}: {comparison.test.wins} wins, {comparison.test.losses} losses, "
                       f"{comparison.test.ties} ties (paired t-test p = {comparison.test.t_pvalue:.3f})", fontsize=9)
        axes.grid(axis="y", alpha=0.3)
    figure.axes[-1].set_xlabel("queries, sorted by challenger − champion")
    return _png(figure)


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
    title = "promoted" if decision.promoted else "not promoted"
    out = [f"# Fine-tuning report: {title}", ""]
    out += [f"- **{k}**: {v}" for k, v in _facts(lineage, model_dir)]
    out += ["", "## Gate decision", ""] + [f"- {r}" for r in decision.reasons]
    out += ["", "## Before / after (nDCG@10 per gate set, paired tests over queries)", "",
            metrics_table(decision.summary()), "",
            f"![Before and after]({PLOTS_DIR}/before_after.png)", "",
            "## Per-query wins and losses", "", f"![Wins and losses]({PLOTS_DIR}/win_loss.png)", ""]
    for comparison in decision.sets:
        lines = _change_lines(comparison)
        if lines:
            out += [f"### {comparison.name}", "", "| change | query | Δ nDCG@10 |", "|---|---|---:|"]
            out += [f"| {kind} | {text.replace('|', '/')} | {d:+.3f} |" for kind, text, d in lines]
            out.append("")
    out += ["## Sample synthetic queries", "", "| kind | query | document |", "|---|---|---|"]
    out += [f"| {q.kind} | {q.text.replace('|', '/')} | {q.doc_id} |" for q in samples]
    out += ["", "The full lineage is in `mlsearch_lineage.json`.", ""]
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;
color:#222}h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .6em}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em;font-size:.9em}dt{font-weight:600}dd{margin:0}
.promoted{color:#2e7d32}.rejected{color:#c62828}img{max-width:100%}td.win{color:#2e7d32}td.loss{color:#c62828}
"""


def render_html(
    lineage: dict[str, Any], decision: GateDecision, samples: Sequence[SyntheticQuery], model_dir: Path,
    plots: dict[str, bytes],
) -> str:
    """The HTML report: one file, inline CSS, plots embedded as base64 ``data:`` URIs."""
    e = html.escape
    status = "promoted" if decision.promoted else "not promoted"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Fine-tuning report: {status}</title><style>{_CSS}</style></head><body>",
        f'<h1>Fine-tuning report: <span class="{"promoted" if decision.promoted else "rejected"}">{status}</span></h1>',
        "<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in _facts(lineage, model_dir)) + "</dl>",
        "<h2>Gate decision</h2><ul>" + "".join(f"<li>{e(r)}</li>" for r in decision.reasons) + "</ul>",
        "<h2>Before / after</h2>",
        "<table><tr><th>gate set</th><th>queries</th><th>nDCG@10 before</th><th>nDCG@10 after</th><th>Δ</th>"
        "<th>wins / losses / ties</th><th>paired t-test p</th><th>Wilcoxon p</th></tr>",
    ]
    for s in decision.sets:
        parts.append(
            f"<tr><td>{e(s.name)}</td><td class='num'>{len(s.champion)}</td><td class='num'>{s.before:.4f}</td>"
            f"<td class='num'>{s.after:.4f}</td><td class='num'>{s.delta:+.4f}</td>"
            f"<td class='num'>{s.test.wins} / {s.test.losses} / {s.test.ties}</td>"
            f"<td class='num'>{s.test.t_pvalue:.4f}</td><td class='num'>{s.test.wilcoxon_pvalue:.4f}</td></tr>"
        )
    parts.append("</table>")
    parts.append(_img(plots["before_after"], "Before and after, per gate set"))
    parts.append("<h2>Per-query wins and losses</h2>")
    parts.append(_img(plots["win_loss"], "Per-query nDCG@10 difference, challenger − champion"))
    for comparison in decision.sets:
        lines = _change_lines(comparison)
        if lines:
            parts.append(f"<h3>{e(comparison.name)}: largest changes</h3><table><tr><th>change</th><th>query</th>"
                         "<th>Δ nDCG@10</th></tr>")
            parts += [f"<tr><td class='{kind}'>{kind}</td><td>{e(text)}</td><td class='num'>{d:+.3f}</td></tr>"
                      for kind, text, d in lines]
            parts.append("</table>")
    parts.append("<h2>Sample synthetic queries</h2><table><tr><th>kind</th><th>query</th><th>document</th></tr>")
    parts += [f"<tr><td>{e(q.kind)}</td><td>{e(q.text)}</td><td>{e(q.doc_id)}</td></tr>" for q in samples]
    parts.append("</table><p>The full lineage is in <code>mlsearch_lineage.json</code>.</p></body></html>\n")
    return "\n".join(parts)


def _img(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


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
