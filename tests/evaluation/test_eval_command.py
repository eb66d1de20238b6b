"""``mlsearch eval`` end to end with the fake model: outputs, --json, the index cache, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from tests.fakes import HashingEncoder

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("cli_fake_model")


def test_eval_on_a_beir_folder_writes_the_report_and_caches_the_index(
    beir_dir: Path, tmp_path: Path, cli_fake_model: HashingEncoder
) -> None:
    out = tmp_path / "reports" / "tiny"
    args = ["eval", "--dataset", str(beir_dir), "--methods", "bm25,dense,hybrid", "--backend", "annoy",
            "--out", str(out), "-k", "10", "--index-dir", str(tmp_path / "indexes" / "default"), "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["dataset"] == "tinybeir" and summary["model"] == "fake-hashing"
    assert list(summary["metrics"]) == ["bm25", "dense", "hybrid"]
    assert summary["metrics"] == json.loads((out / "metrics.json").read_text())
    assert summary["metrics"]["bm25"]["recall@10"] == 1.0  # every relevant document, doc/3 included
    assert {p.name for p in (out / "runs").iterdir()} == {"bm25.trec", "dense.trec", "hybrid.trec"}
    assert "doc/3" in (out / "runs" / "bm25.trec").read_text()  # original ids, not file names
    assert "bm25" in first.stderr and "building an evaluation index" in first.stderr
    assert (tmp_path / "indexes" / "eval-cache").is_dir()

    encoded = cli_fake_model.encoded_texts
    second = runner.invoke(app, [*args[:-1]])
    assert second.exit_code == 0, second.stderr
    assert "using the cached evaluation index" in second.stderr
    assert cli_fake_model.encoded_texts - encoded == 2 * (4 + 1)  # dense and hybrid: 4 queries and a warm-up
    assert "| hybrid |" in second.stdout and "report.html" in second.stdout


def test_eval_reports_a_malformed_dataset_by_file_and_line(beir_dir: Path, tmp_path: Path) -> None:
    (beir_dir / "queries.jsonl").write_text('{"_id": "q1", "text": "ok"}\n{"_id": "q2"}\n')
    result = runner.invoke(app, ["eval", "--dataset", str(beir_dir), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "queries.jsonl:2: missing field 'text'" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "r").exists()


def test_eval_rejects_bad_options_before_loading_anything(beir_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", "--dataset", str(beir_dir), "--methods", "dense,colbert"])
    assert result.exit_code == 1 and "unknown method(s) colbert" in result.stderr
    result = runner.invoke(app, ["eval", "--dataset", str(beir_dir), "--backend", "bm25"])
    assert result.exit_code == 1 and "unknown vector backend 'bm25'" in result.stderr
