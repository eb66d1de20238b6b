"""The drift report: ``drift.json``, ``report.md`` (with its PNG plots) and a one-file ``report.html``.

The HTML page embeds its plots as base64 PNGs, so it works offline and can be mailed as one file. Every report
ends with what to do when drift is confirmed.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from drift import plots
from drift.detectors import Cut
from drift.monitor import DriftEngine, DriftStatus
from mlsearch.configs import DriftConfig
from mlsearch.errors import DriftError
from mlsearch.reporting import (
    Cell,
    html_figure,
    html_list,
    html_page,
    html_table,
    inline_markdown,
    markdown_image,
    markdown_table,
)

NEXT_STEPS = (
    "mlsearch drift export --out drift-queries.txt",
    "mlsearch finetune --queries drift-queries.txt --out models/finetuned",
    "mlsearch index build --model models/finetuned",
    'curl -X POST -H "X-API-Key: $MLSEARCH_ADMIN_API_KEY" http://127.0.0.1:8000/admin/drift/reset',
)
STATUS_COLORS = {"warming_up": "#8C8C8C", **plots.LEVEL_COLORS}


@dataclass
class ReportData:
    """What a drift report shows: the verdict, and the samples behind it."""

    status: DriftStatus
    config: DriftConfig
    reference_columns: dict[str, np.ndarray] = field(default_factory=dict)
    window_columns: dict[str, np.ndarray] = field(default_factory=dict)
    positions: list[int] = field(default_factory=list)
    trace: dict[str, list[float]] = field(default_factory=dict)
    cuts: dict[str, list[Cut]] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    window_start: int | None = None
    generated_at: float = field(default_factory=time.time)

    @property
    def has_data(self) -> bool:
        """Whether there is a reference and a window to plot."""
        return bool(self.reference_columns) and self.status.window_size > 0


def report_data(engine: DriftEngine | None, status: DriftStatus, config: DriftConfig) -> ReportData:
    """Collect the report's data from an engine (None while warming up without a reference).

    Hold the monitor's lock while calling it when a writer thread may feed the engine.
    """
    data = ReportData(status=status, config=config)
    if engine is None:
        return data
    data.reference_columns = {k: v.copy() for k, v in engine.reference_columns.items()}
    data.window_columns = engine.window_columns()
    trace = list(engine.trace)
    data.positions = [position for position, _ in trace]
    keys = sorted({key for _, point in trace for key in point})
    data.trace = {key: [point[key] for _, point in trace if key in point] for key in keys}
    data.cuts = {name: list(tracker.cuts) for name, tracker in engine.adwins.items()}
    data.thresholds = {name: float(c.threshold or 1.0) for name, c in engine.cusums.items()}
    data.window_start = engine.position - engine.window_size + 1 if engine.window_size else None
    return data


def to_json(data: ReportData) -> dict[str, Any]:
    """The ``drift.json`` document: the status, the ADWIN cut points and the settings used."""
    first = data.positions[0] if data.positions else None
    return {
        **data.status.to_dict(),
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(data.generated_at)),
        "adwin_cuts": {
            name: [{"position": c.position, "detected_at": c.detected_at,
                    "percentile_before": _num(c.mean_before), "percentile_after": _num(c.mean_after)}
                   for c in cuts]
            for name, cuts in data.cuts.items()
        },
        "stream": {"first_position": first, "reference_size": data.status.reference_size,
                   "window_start": data.window_start},
        "config": {k: getattr(data.config, k) for k in data.config.__dataclass_fields__},
        "next_steps": list(NEXT_STEPS),
    }


def _num(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def figures(data: ReportData) -> dict[str, bytes]:
    """The report's PNG plots by file name (none while there is no data)."""
    if not data.has_data:
        return {}
    features = data.status.features
    levels = {name: f.level for name, f in features.items()}
    titles = {
        name: f"PSI {_fmt(f.psi)}, KS p {_fmt(f.ks_p_adjusted)}" + (", CUSUM alarm" if f.cusum_alarm else "")
        for name, f in features.items()
    }
    first = data.positions[0] if data.positions else 0
    cuts = {name: [c for c in found if c.position >= first] for name, found in data.cuts.items()}
    return {
        "distributions.png": plots.distributions(data.reference_columns, data.window_columns, titles, levels),
        "psi.png": plots.psi_bars({n: f.psi for n, f in features.items()}, levels, data.config.psi_warning,
                                  data.config.psi_drift),
        "stream.png": plots.stream(data.positions, data.trace, data.status.reference_size, cuts,
                                   dict(data.thresholds),
                                   data.window_start),
    }


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    return f"{value:.{digits}g}"


def _feature_rows(data: ReportData) -> list[list[str]]:
    rows = []
    for name, f in data.status.features.items():
        adwin = f"{f.adwin_cut_queries_ago} queries ago" if f.adwin_change else "–"
        cusum = (f"{f.cusum:.1f} / {f.cusum_threshold:.1f}" if f.cusum is not None and f.cusum_threshold
                 else "–")
        rows.append([name, f.level, _fmt(f.reference_mean), _fmt(f.window_mean), _fmt(f.ks_p),
                     _fmt(f.ks_p_adjusted), _fmt(f.psi), adwin, cusum])
    return rows


HEADERS = ["feature", "level", "reference mean", "window mean", "KS p", "KS p adjusted", "PSI", "ADWIN cut",
           "CUSUM / threshold"]
READING = [
    "**status** is the worst level over the features. `drift`: a one-sided sequential test (CUSUM) on a "
    "feature's per-query score, or on the combined score of the top score, unknown terms, keyword match and "
    "centroid distance, is above its drift threshold; each score has a chart for mild shifts (slack 0.5) and "
    "one for clear shifts (slack 1.5, named `@1.5`), and their thresholds are calibrated together on the "
    "reference for one false alarm in a hundred runs of ten windows of in-domain traffic (with "
    "`MLSEARCH_DRIFT_PSI_CONFIRMS=true`, also a significant KS test with PSI at least the drift threshold). "
    "`warning`: a CUSUM above its warning threshold (five in a hundred runs), or an ADWIN cut inside the "
    "window away from the reference. KS p-values are shown but warn only with `MLSEARCH_DRIFT_KS_WARNS=true`. "
    "`warming_up`: the reference is not complete, or the window holds too few queries.",
    "**Distributions**: grey bars are the reference, the blue line the current window. Questions the corpus "
    "does not answer have a lower top score, more unknown terms, a lower keyword match (no passage covers "
    "their words) and a larger distance to the reference centroid.",
    "**PSI** sizes each shift (0.1 warning, 0.25 drift by convention), but with windows of a hundred queries "
    "it reaches 0.1–0.3 by chance, so it raises no level on its own; trust it where KS agrees.",
    "**Stream**: the top score query by query (grey: the reference); red lines are where ADWIN cut a stream. "
    "Below, each CUSUM (and the combined one) divided by its drift threshold: drift while a line is above 1.",
]


def render_markdown(data: ReportData, images: dict[str, str] | None = None) -> str:
    """The Markdown report; ``images`` maps plot file names to the links to use."""
    status = data.status
    lines = [
        "# Query drift report", "",
        f"**Status: {status.status}** — reference {status.reference_size} queries, window {status.window_size} "
        f"queries ({status.queries_since_reference} since the reference), generated {_generated(data)}.", "",
    ]
    if status.reasons:
        lines += ["## Reasons", "", *[f"- {r}" for r in status.reasons], ""]
    if status.features:
        lines += ["## Features", "", markdown_table(HEADERS, _feature_rows(data)), ""]
    if status.multivariate:
        lines += [_multivariate(status.multivariate) + ".", ""]
    for name, link in (images or {}).items():
        lines += [markdown_image(name, link), ""]
    lines += ["## How to read it", "", *[f"- {r}" for r in READING], ""]
    lines += ["## When drift is confirmed", "", NEXT_STEPS_INTRO, "", "```bash", *NEXT_STEPS, "```", ""]
    return "\n".join(lines)


NEXT_STEPS_INTRO = ("Export the logged queries (needs `MLSEARCH_DRIFT_STORE_TEXT=full`), fine-tune on them, "
                    "rebuild, then start a new reference:")
PLOT_TITLES = {"distributions.png": "Reference vs window, per feature", "psi.png": "Population stability index",
               "stream.png": "The stream, ADWIN's cut points and the sequential test"}
_CSS = "body{max-width:1100px}.badge{color:#fff;padding:.15em .6em;border-radius:.3em}"


def _generated(data: ReportData) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(data.generated_at))


def _multivariate(mv: dict[str, Any]) -> str:
    return (f"Embeddings, MMD permutation test: MMD² {_fmt(mv.get('mmd2'))}, p {_fmt(mv.get('p'))} "
            f"({mv.get('permutations')} permutations)")


def _feature_cells(row: list[str]) -> list[str | Cell]:
    """A feature row for HTML: the level in its colour, the measurements right-aligned."""
    name, level, *rest = row
    level_cell = Cell(level, style=f"color:{plots.LEVEL_COLORS.get(level, 'black')};font-weight:bold")
    return [name, level_cell, *(Cell(value, "num") for value in rest)]


def render_html(data: ReportData, images: dict[str, bytes] | None = None) -> str:
    """The report as one self-contained HTML page (plots embedded as base64 PNGs).

    Args:
        data: The report's data.
        images: The plots when already drawn (:func:`figures`).
    """
    status = data.status
    color = STATUS_COLORS.get(status.status, "black")
    parts = [
        "<h1>Query drift report</h1>",
        f"<p><span class='badge' style='background:{color}'>{html.escape(status.status)}</span> "
        f"reference {status.reference_size} queries, window {status.window_size} queries "
        f"({status.queries_since_reference} since the reference), generated {_generated(data)}</p>",
    ]
    if status.reasons:
        parts += ["<h2>Reasons</h2>", html_list(status.reasons)]
    if status.features:
        parts += ["<h2>Features</h2>", html_table(HEADERS, [_feature_cells(row) for row in _feature_rows(data)])]
    if status.multivariate:
        parts.append(f"<p>{html.escape(_multivariate(status.multivariate))}.</p>")
    for name, png in (figures(data) if images is None else images).items():
        parts += [f"<h2>{html.escape(PLOT_TITLES[name])}</h2>", html_figure(png, PLOT_TITLES[name], show_caption=False)]
    parts += ["<h2>How to read it</h2>", html_list(READING, markup=True),
              "<h2>When drift is confirmed</h2>", f"<p>{inline_markdown(NEXT_STEPS_INTRO)}</p>",
              "<pre>" + html.escape("\n".join(NEXT_STEPS)) + "</pre>"]
    return html_page("mlsearch drift report", parts, css=_CSS)


def write_report(data: ReportData, out_dir: Path) -> dict[str, Path]:
    """Write ``drift.json``, ``report.md`` with its PNGs, and ``report.html`` into ``out_dir``.

    Returns:
        The written files by name.

    Raises:
        DriftError: The folder cannot be written.
    """
    out_dir = Path(out_dir)
    written: dict[str, Path] = {}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        images = figures(data)
        for name, png in images.items():
            (out_dir / name).write_bytes(png)
            written[name] = out_dir / name
        (out_dir / "drift.json").write_text(json.dumps(to_json(data), indent=2))
        (out_dir / "report.md").write_text(render_markdown(data, {n: n for n in written}))
        (out_dir / "report.html").write_text(render_html(data, images))
    except OSError as exc:
        raise DriftError(f"cannot write the drift report to {out_dir}: {exc.strerror or exc}") from None
    written.update({n: out_dir / n for n in ("drift.json", "report.md", "report.html")})
    return written
