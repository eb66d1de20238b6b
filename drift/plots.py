"""The drift report's plots, drawn with matplotlib's object API into PNG bytes."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from drift.detectors import Cut
from mlsearch.reporting import figure_png

LEVEL_COLORS = {"ok": "#55A868", "warning": "#DD8452", "drift": "#C44E52"}
REFERENCE_COLOR = "#8C8C8C"
WINDOW_COLOR = "#4C72B0"
DPI = 100


def distributions(
    reference: dict[str, np.ndarray], window: dict[str, np.ndarray], titles: dict[str, str],
    levels: dict[str, str],
) -> bytes:
    """One panel per feature: the reference's and the window's histograms on shared bins (as shares)."""
    names = list(reference)
    columns = 3
    rows = max(1, math.ceil(len(names) / columns))
    figure = Figure(figsize=(4.0 * columns, 2.6 * rows))
    for i, name in enumerate(names):
        axes = figure.add_subplot(rows, columns, i + 1)
        ref = reference[name][np.isfinite(reference[name])]
        win = window[name][np.isfinite(window[name])]
        if ref.size == 0:
            axes.set_title(f"{name}: no data", fontsize=9)
            continue
        both = np.concatenate([ref, win]) if win.size else ref
        low, high = float(both.min()), float(both.max())
        edges = np.linspace(low, high if high > low else low + 1.0, 21).tolist()
        axes.hist(ref, bins=edges, weights=np.full(ref.size, 1 / ref.size), color=REFERENCE_COLOR, alpha=0.55,
                  label=f"reference ({ref.size})")
        if win.size:
            axes.hist(win, bins=edges, weights=np.full(win.size, 1 / win.size), histtype="step", linewidth=2,
                      color=WINDOW_COLOR, label=f"window ({win.size})")
        level = levels.get(name, "ok")
        axes.set_title(f"{name}\n{titles.get(name, '')}", fontsize=8, color=LEVEL_COLORS.get(level, "black"))
        axes.tick_params(labelsize=7)
        axes.set_ylabel("share", fontsize=7)
        if i == 0:
            axes.legend(fontsize=7)
    return figure_png(figure, dpi=DPI)


def psi_bars(psi: dict[str, float | None], levels: dict[str, str], warning: float, drift: float) -> bytes:
    """Horizontal PSI bars per feature, coloured by the feature's level, with the two thresholds."""
    names = list(psi)[::-1]
    values = [psi[n] or 0.0 for n in names]
    figure = Figure(figsize=(6.5, 0.45 * len(names) + 1.2))
    axes = figure.add_subplot()
    bars = axes.barh(names, values, color=[LEVEL_COLORS.get(levels.get(n, "ok"), "grey") for n in names])
    axes.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    axes.axvline(warning, color=LEVEL_COLORS["warning"], linestyle="--", linewidth=1, label=f"warning {warning}")
    axes.axvline(drift, color=LEVEL_COLORS["drift"], linestyle="--", linewidth=1, label=f"drift {drift}")
    axes.set_xlabel("population stability index (window vs reference)")
    axes.set_xlim(0, max([drift * 1.3, *values]) * 1.15)
    axes.legend(fontsize=7, loc="lower right")
    axes.set_title("PSI per feature (bar colour: the feature's level)", fontsize=9)
    return figure_png(figure, dpi=DPI)


def stream(
    positions: list[int], values: dict[str, list[float]], reference_size: int, cuts: dict[str, list[Cut]],
    thresholds: dict[str, float], window_start: int | None, feature: str = "top_score",
) -> bytes:
    """The top dense score query by query, with ADWIN's cut points (of every watched feature); below, each
    CUSUM against its threshold."""
    figure = Figure(figsize=(10, 5.2))
    top = figure.add_subplot(2, 1, 1)
    x = np.asarray(positions)
    y = np.asarray(values.get(feature, []), dtype=float)
    top.plot(x, y, ".", markersize=3, color=WINDOW_COLOR, alpha=0.6, label=feature)
    if y.size >= 5:
        kernel = np.ones(10) / 10
        finite = np.where(np.isfinite(y), y, np.nanmean(y))
        smooth = np.convolve(finite, kernel, mode="valid")
        top.plot(x[len(x) - len(smooth):], smooth, color="black", linewidth=1.2, label="mean of last 10")
    top.axvspan(x.min() if x.size else 0, reference_size + 0.5, color=REFERENCE_COLOR, alpha=0.15,
                label="reference")
    if window_start is not None:
        top.axvline(window_start - 0.5, color=WINDOW_COLOR, linewidth=1, linestyle=":", label="window starts")
    styles = ["--", "-.", ":"]
    for j, (name, feature_cuts) in enumerate(cuts.items()):
        for i, cut in enumerate(feature_cuts):
            top.axvline(cut.position - 0.5, color=LEVEL_COLORS["drift"], linestyle=styles[j % 3], linewidth=1.2,
                        label=f"ADWIN cut ({name})" if i == 0 else None)
    top.set_ylabel(feature, fontsize=8)
    top.set_title(f"{feature} over the stream (queries numbered from the start of the reference)", fontsize=9)
    top.legend(fontsize=7, loc="lower left", ncols=3)
    bottom = figure.add_subplot(2, 1, 2, sharex=top)
    for i, (name, threshold) in enumerate(thresholds.items()):
        series = np.asarray(values.get(f"cusum:{name}", []), dtype=float)
        if series.size:
            color = f"C{i}"
            bottom.plot(x[len(x) - series.size:], series / threshold, color=color, linewidth=1.2, label=name)
    bottom.axhline(1.0, color=LEVEL_COLORS["drift"], linestyle="--", linewidth=1, label="threshold")
    bottom.set_ylabel("CUSUM / threshold", fontsize=8)
    bottom.set_xlabel("query", fontsize=8)
    bottom.set_title("Sequential tests (one-sided CUSUMs): drift while a line is above 1", fontsize=9)
    bottom.legend(fontsize=7, loc="upper left", ncols=4)
    return figure_png(figure, dpi=DPI)
