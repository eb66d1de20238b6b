"""Metrics agree with their textbook definitions, and with what a run file holds; paired tests behave."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from evaluation.metrics import compute, per_query, recall_curve
from evaluation.runner import best_per_item
from evaluation.runs import read_trec_run, write_trec_run
from evaluation.significance import all_pairs, paired_test
from mlsearch.errors import DatasetError
from tests.evaluation.independent import mean, mrr_at, ndcg_at

QRELS = {"q1": {"a": 3, "b": 1, "c": 2}, "q2": {"x": 1}, "q3": {"y": 1}, "q4": {"m": 1, "n": 0}}
RUN = {
    "q1": {"a": 0.9, "d": 0.8, "c": 0.7, "e": 0.6, "b": 0.5},
    "q2": {"z": 3.0, "w": 2.0, "x": 1.0},
    "q3": {"p": 0.2},
    # q4 retrieves nothing
}


def test_ndcg_and_mrr_match_the_definitions_by_hand() -> None:
    # q1 by hand: DCG = 3/log2(2) + 0 + 2/log2(4) + 0 + 1/log2(6); IDCG = 3 + 2/log2(3) + 1/log2(4)
    by_hand_q1 = (3 + 2 / 2 + 1 / math.log2(6)) / (3 + 2 / math.log2(3) + 1 / 2)
    assert ndcg_at(QRELS["q1"], RUN["q1"]) == pytest.approx(by_hand_q1)
    got = per_query(QRELS, RUN, ["ndcg@10", "mrr@10"])
    for qid in QRELS:
        assert got["ndcg@10"][qid] == pytest.approx(ndcg_at(QRELS[qid], RUN.get(qid, {})))
        assert got["mrr@10"][qid] == pytest.approx(mrr_at(QRELS[qid], RUN.get(qid, {})))
    means = compute(QRELS, RUN, ["ndcg@10", "mrr@10", "recall@1", "map"])
    assert means["ndcg@10"] == pytest.approx(mean([ndcg_at(QRELS[q], RUN.get(q, {})) for q in QRELS]))
    assert means["mrr@10"] == pytest.approx((1 + 1 / 3 + 0 + 0) / 4)
    assert means["recall@1"] == pytest.approx((1 / 3 + 0 + 0 + 0) / 4)
    # AP(q1) = (1/1 + 2/3 + 3/5) / 3; AP(q2) = 1/3
    assert means["map"] == pytest.approx(((1 + 2 / 3 + 3 / 5) / 3 + 1 / 3) / 4)


def test_metrics_from_a_run_file_are_the_same(tmp_path: Path) -> None:
    path = tmp_path / "run.trec"
    write_trec_run(path, RUN, tag="test")
    first = path.read_text().splitlines()[0].split()
    assert first == ["q1", "Q0", "a", "1", "0.9", "test"]
    again = read_trec_run(path)
    assert again == RUN
    assert compute(QRELS, again) == compute(QRELS, RUN)


def test_read_trec_run_rejects_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.trec"
    path.write_text("q1 Q0 a 1 0.5 tag\nq1 Q0 b 2 tag\n")
    with pytest.raises(DatasetError, match="bad.trec:2: expected 6 fields"):
        read_trec_run(path)


def test_recall_curve_grows_with_k() -> None:
    curve = recall_curve(QRELS, RUN, cutoffs=(1, 3, 5, 100))
    assert list(curve) == [1, 3, 5, 100]
    assert curve[1] <= curve[3] <= curve[5] <= curve[100]
    assert curve[100] == pytest.approx((1 + 1 + 0 + 0) / 4)


def test_best_per_item_keeps_each_documents_best_chunk_and_a_strict_order() -> None:
    labels = ["a", "a", "b", "c", "b", "d"]
    ranked = [(1, 0.9), (0, 0.8), (2, 0.8), (3, 0.8), (4, 0.1), (5, 0.05)]
    out = best_per_item(ranked, labels, k=3)
    assert list(out) == ["a", "b", "c"]
    assert out["a"] == 0.9 and out["b"] == 0.8
    assert out["c"] < out["b"] and out["c"] == pytest.approx(0.8)
    assert compute({"q": {"c": 1}}, {"q": out}, ["mrr@10"])["mrr@10"] == pytest.approx(1 / 3)


def test_paired_tests() -> None:
    a = {f"q{i}": 0.9 if i % 5 else 0.6 for i in range(40)}
    b = {f"q{i}": 0.3 + 0.01 * (i % 3) for i in range(40)}
    better = paired_test("a", "b", a, b, "ndcg@10")
    assert better.significant and better.t_pvalue < 1e-6 and better.wilcoxon_pvalue < 1e-6
    assert (better.wins, better.losses, better.ties) == (40, 0, 0)
    same = paired_test("a", "a2", a, dict(a), "ndcg@10")
    assert not same.significant and same.t_pvalue == 1.0 and same.ties == 40
    pairs = all_pairs({"x": a, "y": b, "z": a}, "ndcg@10")
    assert [(p.a, p.b) for p in pairs] == [("x", "y"), ("x", "z"), ("y", "z")]
    with pytest.raises(ValueError, match="same queries"):
        paired_test("a", "b", a, {"q0": 1.0}, "ndcg@10")
