"""The report's plots, drawn with matplotlib's object API (no pyplot state, no display) into PNG bytes."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from evaluation.metrics import METRICS, PRIMARY_METRIC
from evaluation.runner import EvaluationResult
from mlsearch.catalog import DEFAULT_COMPARE_METHODS, METHOD_NAMES
from mlsearch.reporting import figure_png, win_loss_bars

LABELS = {"ndcg@10": "nDCG@10", "mrr@10": "MRR@10", "recall@1": "R@1", "recall@10": "R@10",
          "recall@100": "R@100", "map": "MAP"}
COLORS = dict(zip(METHOD_NAMES, ("#4C72B0", "#DD8452", "#55A868", "#C44E52"), strict=False))
"""One colour per catalog method, in catalog order (matplotlib's cycle for others)."""


def _color(method: str, i: int) -> str:
    return COLORS.get(method, f"C{i}")


def metric_bars(result: EvaluationResult) -> bytes:
    """Grouped bars: every metric (x) for every method (one colour each)."""
    figure = Figure(figsize=(8, 3.8))
    axes = figure.add_subplot()
    methods = list(result.methods)
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(METRICS))
    for i, method in enumerate(methods):
        values = [result.methods[method].metrics[m] for m in METRICS]
        bars = axes.bar(x + (i - (len(methods) - 1) / 2) * width, values, width, label=method,
                        color=_color(method, i))
        axes.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
    axes.set_xticks(x, [LABELS.get(m, m) for m in METRICS])
    axes.set_ylim(0, 1.2)
    axes.set_yticks(np.linspace(0, 1, 6))
    axes.set_ylabel("mean over queries")
    axes.set_title(f"Retrieval quality on {result.dataset['name']}")
    axes.legend(ncols=len(methods), fontsize=8, loc="upper center")
    axes.grid(axis="y", alpha=0.3)
    return figure_png(figure)


def recall_curves(result: EvaluationResult) -> bytes:
    """Mean recall@k against k (log scale), one line per method."""
    figure = Figure(figsize=(6, 3.8))
    axes = figure.add_subplot()
    for i, (method, outcome) in enumerate(result.methods.items()):
        cutoffs = sorted(outcome.recall_curve)
        axes.plot(cutoffs, [outcome.recall_curve[c] for c in cutoffs], marker="o", label=method,
                  color=_color(method, i))
    axes.set_xscale("log")
    cutoffs = sorted(next(iter(result.methods.values())).recall_curve)
    axes.set_xticks(cutoffs, [str(c) for c in cutoffs])
    axes.xaxis.set_minor_locator(NullLocator())
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("k")
    axes.set_ylabel("recall@k")
    axes.set_title("Recall at k")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    return figure_png(figure)


def win_loss_pair(result: EvaluationResult) -> tuple[str, str] | None:
    """The two methods of the win/loss chart: the catalog's default comparison when both ran (the second against
    the first: dense against LSI), else the first two."""
    methods = list(result.methods)
    first, second = DEFAULT_COMPARE_METHODS
    if first in methods and second in methods:
        return second, first
    return (methods[0], methods[1]) if len(methods) >= 2 else None


def win_loss(result: EvaluationResult, a: str, b: str, metric: str = PRIMARY_METRIC) -> bytes:
    """Per-query difference ``a − b`` of a metric, sorted: bars above zero are wins of ``a``."""
    scores_a = result.methods[a].per_query[metric]
    scores_b = result.methods[b].per_query[metric]
    figure = Figure(figsize=(8, 3.4))
    axes = figure.add_subplot()
    wins, losses, ties = win_loss_bars(axes, [scores_a[q] - scores_b[q] for q in scores_a])
    axes.set_xlabel("queries, sorted by difference")
    axes.set_ylabel(f"{LABELS.get(metric, metric)}: {a} − {b}")
    axes.set_title(f"{a} vs {b} per query: {wins} wins, {losses} losses, {ties} ties")
    return figure_png(figure)


def latency_boxes(result: EvaluationResult) -> bytes:
    """Distribution of per-query latency for each method."""
    figure = Figure(figsize=(6, 3.4))
    axes = figure.add_subplot()
    methods = list(result.methods)
    data = [list(result.methods[m].latency_ms.values()) for m in methods]
    boxes = axes.boxplot(data, tick_labels=methods, showfliers=True, patch_artist=True)
    for i, (patch, method) in enumerate(zip(boxes["boxes"], methods, strict=True)):
        patch.set_facecolor(_color(method, i))
        patch.set_alpha(0.6)
    axes.set_yscale("log")
    axes.set_ylabel("ms per query (log scale)")
    axes.set_title("Latency per query")
    axes.grid(axis="y", alpha=0.3)
    return figure_png(figure)


def all_plots(result: EvaluationResult) -> dict[str, tuple[str, bytes]]:
    """Every plot of the report: file stem → (caption, PNG bytes)."""
    plots = {
        "metrics": ("Metrics per method", metric_bars(result)),
        "recall": ("Recall at k", recall_curves(result)),
    }
    pair = win_loss_pair(result)
    if pair:
        plots["win_loss"] = (f"Per-query {LABELS[PRIMARY_METRIC]}: {pair[0]} vs {pair[1]}", win_loss(result, *pair))
    plots["latency"] = ("Latency per query", latency_boxes(result))
    return plots
