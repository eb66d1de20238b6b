"""The report folder: metrics.json agrees with the run files; the HTML is one offline file naming its inputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from evaluation.datasets import load_dataset
from evaluation.metrics import METRICS
from evaluation.report import write_report
from evaluation.runner import LATENCY_KEYS, EvaluationResult, evaluate
from evaluation.runs import read_trec_run
from indexing.backends.configs import search_config
from mlsearch.settings import Settings
from search.searcher import Searcher
from tests.evaluation.independent import mean, mrr_at, ndcg_at
from tests.fakes import HashingEncoder


@pytest.fixture
def result(built_index: Path, settings: Settings, fake_encoder: HashingEncoder, qrels_dir: Path,
           tiny_corpus: Path) -> EvaluationResult:
    searcher = Searcher.open(built_index, search_config(settings), encoder=fake_encoder)
    return evaluate(searcher, load_dataset(qrels_dir, corpus_dir=tiny_corpus), ["dense", "lsi", "hybrid"], k=4)


def test_report_files_and_metrics_agree_with_the_run_files(result: EvaluationResult, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "tiny"
    paths = write_report(result, out)
    assert sorted(p.name for p in out.iterdir()) == [
        "details.json", "metrics.json", "plots", "report.html", "report.md", "runs"
    ]
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["dense.trec", "hybrid.trec", "lsi.trec"]
    metrics = json.loads(paths["metrics"].read_text())
    assert list(metrics) == ["dense", "lsi", "hybrid"]
    for method, values in metrics.items():
        assert list(values) == [*METRICS, *LATENCY_KEYS]
        run = read_trec_run(out / "runs" / f"{method}.trec")
        assert run == result.methods[method].run
        recomputed_ndcg = mean([ndcg_at(result.qrels[q], run.get(q, {})) for q in result.qrels])
        recomputed_mrr = mean([mrr_at(result.qrels[q], run.get(q, {})) for q in result.qrels])
        assert values["ndcg@10"] == pytest.approx(recomputed_ndcg, abs=1e-4)
        assert values["mrr@10"] == pytest.approx(recomputed_mrr, abs=1e-4)
    details = json.loads(paths["details"].read_text())
    assert details["per_query"]["dense"]["metrics"]["ndcg@10"].keys() == result.qrels.keys()
    assert len(details["comparisons"]) == 3


def test_reports_name_their_inputs_and_the_html_is_self_contained(
    result: EvaluationResult, tmp_path: Path
) -> None:
    paths = write_report(result, tmp_path / "r")
    page = paths["report_html"].read_text()
    markdown = paths["report_md"].read_text()
    for text in (page, markdown):
        assert "fake-hashing" in text and result.index["version"] in text
        assert "tinyqrels" in text and result.created_at in text
        assert "best chunk" in text and "nDCG@10" in text
        assert ("convex-zscore dense:1 bm25:1; prf(10 chunks, dense 0.7, bm25 10 terms 0.5, first pass kept); "
                "bm25 smoothed over 3 neighbours at 0.4 (exact, saved graph)") in text
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert len(sources) == 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<link" not in page and "<script" not in page
    assert "dense vs lsi" in page  # the win/loss chart's caption
    for name in re.findall(r"\(plots/([a-z_]+\.png)\)", markdown):
        assert (tmp_path / "r" / "plots" / name).read_bytes().startswith(b"\x89PNG")


def test_a_report_replaces_an_earlier_one_but_never_other_files(result: EvaluationResult, tmp_path: Path) -> None:
    out = tmp_path / "r"
    write_report(result, out)
    (out / "runs" / "old.trec").write_text("stale\n")
    write_report(result, out)
    assert not (out / "runs" / "old.trec").exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".r.")]  # no staging folder left
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an evaluation report"):
        write_report(result, precious)
    assert (precious / "keep.txt").read_text() == "mine"
