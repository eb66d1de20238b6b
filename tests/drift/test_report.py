"""The drift report files: drift.json, report.md with its plots, and a self-contained report.html."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from drift.features import QueryObservation
from drift.monitor import DriftEngine, DriftStatus
from drift.reference import Reference
from drift.report import NEXT_STEPS, render_html, report_data, write_report
from mlsearch.configs import DriftConfig
from mlsearch.errors import DriftError


def test_report_of_a_drifting_stream(tmp_path: Path, make_observations: Callable[..., list[QueryObservation]],
                                     small_config: DriftConfig) -> None:
    engine = DriftEngine(Reference(make_observations(40, seed=1)), small_config)
    engine.observe(make_observations(30, seed=2))
    engine.observe(make_observations(60, seed=3, shift=0.8))  # ADWIN needs a few dozen queries to cut
    data = report_data(engine, engine.evaluate(), small_config)
    written = write_report(data, tmp_path / "out")
    assert set(written) == {"distributions.png", "psi.png", "stream.png", "drift.json", "report.md", "report.html"}
    document = json.loads((tmp_path / "out" / "drift.json").read_text())
    assert document["status"] == "drift" and document["drift"] is True
    assert document["features"]["top_score"]["window_mean"] < document["features"]["top_score"]["reference_mean"]
    assert document["adwin_cuts"]["top_score"], "ADWIN should have cut the top-score stream"
    assert document["next_steps"] == list(NEXT_STEPS)
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "**Status: drift**" in markdown and "![stream.png](stream.png)" in markdown
    assert markdown.rstrip().endswith("```") and "mlsearch drift export" in markdown
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "src='http" not in page
    assert "top_score" in page and "mlsearch finetune --queries" in page
    assert (tmp_path / "out" / "stream.png").read_bytes().startswith(b"\x89PNG")


def test_report_while_warming_up_has_no_plots() -> None:
    status = DriftStatus(status="warming_up", reference_size=3, window_size=0, reasons=["reference: 3 of 200"])
    page = render_html(report_data(None, status, DriftConfig()))
    assert "warming_up" in page and "reference: 3 of 200" in page and "base64" not in page


def test_an_unwritable_report_folder_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    status = DriftStatus(status="warming_up", reference_size=0, window_size=0)
    with pytest.raises(DriftError, match="cannot write the drift report"):
        write_report(report_data(None, status, DriftConfig()), tmp_path / "file" / "out")
