"""Weighted RRF, convex combination with min-max and z-score normalisation, fusion configs, document scoring."""

from __future__ import annotations

import numpy as np
import pytest

from search.doc_scoring import DocScoring, document_scores
from search.fusion import (
    FUSION_VARIANTS,
    FusionConfig,
    convex_combination,
    fuse,
    normalize_scores,
    reciprocal_rank_fusion,
    untuned_fusion,
)


def test_weighted_rrf_matches_a_hand_computed_example() -> None:
    fused = dict(reciprocal_rank_fusion([["a", "b"], ["b", "a"]], k=10, weights=[3.0, 1.0]))
    assert fused["a"] == pytest.approx(3 / 11 + 1 / 12)
    assert fused["b"] == pytest.approx(3 / 12 + 1 / 11)
    with pytest.raises(ValueError, match="weight"):
        reciprocal_rank_fusion([["a"], ["b"]], weights=[1.0])


def test_equal_weights_give_plain_rrf() -> None:
    rankings = [["a", "b", "c"], ["c", "d", "a"]]
    assert reciprocal_rank_fusion(rankings, weights=[1, 1]) == reciprocal_rank_fusion(rankings)


@pytest.mark.parametrize("how", ["minmax", "zscore"])
def test_normalisation_against_numpy(how: str) -> None:
    values = np.array([3.0, 1.0, 2.0, 7.5])
    got = normalize_scores(values.tolist(), how)
    expected = (values - values.min()) / np.ptp(values) if how == "minmax" else (values - values.mean()) / values.std()
    np.testing.assert_allclose(got, expected)
    assert normalize_scores([4.0, 4.0], how).tolist() == ([1.0, 1.0] if how == "minmax" else [0.0, 0.0])
    assert normalize_scores([], how).size == 0


def test_convex_combination_by_hand_and_missing_items_get_the_list_floor() -> None:
    dense = [("a", 0.9), ("b", 0.5), ("c", 0.1)]
    bm25 = [("c", 12.0), ("d", 2.0)]
    fused = dict(convex_combination([dense, bm25], [0.7, 0.3], "minmax"))
    assert fused["a"] == pytest.approx(0.7 * 1.0 + 0.3 * 0.0)
    assert fused["b"] == pytest.approx(0.7 * 0.5)
    assert fused["c"] == pytest.approx(0.7 * 0.0 + 0.3 * 1.0)
    assert fused["d"] == pytest.approx(0.0)
    assert [item for item, _ in convex_combination([dense, bm25], [0.7, 0.3])][0] == "a"
    assert [item for item, _ in convex_combination([dense, bm25], [0.2, 0.8])][0] == "c"


def test_a_weight_of_one_list_reproduces_that_list() -> None:
    dense = [("a", 0.9), ("b", 0.5), ("c", 0.1)]
    bm25 = [("c", 12.0), ("b", 2.0), ("a", 1.0)]
    for how in ("minmax", "zscore"):
        assert [i for i, _ in convex_combination([dense, bm25], [1.0, 0.0], how)] == ["a", "b", "c"]
        assert [i for i, _ in convex_combination([dense, bm25], [0.0, 1.0], how)] == ["c", "b", "a"]


def test_fusion_config_validates_and_round_trips() -> None:
    config = FusionConfig(kind="convex", normalization="zscore", methods=("dense", "bm25", "lsi"),
                          weights=(0.5, 0.3, 0.2), depth=50, source="test")
    assert FusionConfig.from_dict(config.to_dict()) == config
    assert "convex-zscore" in config.label() and "lsi:0.2" in config.label()
    for bad in ({"kind": "borda"}, {"normalization": "rank"}, {"weights": (1.0,)}, {"weights": (-1.0, 2.0)},
                {"weights": (0.0, 0.0)}, {"rrf_k": 0}, {"depth": 0}):
        with pytest.raises(ValueError):
            FusionConfig(**bad)  # type: ignore[arg-type]


def test_fuse_dispatches_on_the_kind() -> None:
    lists = [[("a", 0.9), ("b", 0.8)], [("b", 5.0), ("c", 1.0)]]
    assert fuse(FUSION_VARIANTS["hybrid-rrf"], lists) == reciprocal_rank_fusion([["a", "b"], ["b", "c"]])
    assert fuse(FUSION_VARIANTS["hybrid-convex"], lists) == convex_combination(lists)
    with pytest.raises(ValueError, match="needs 2 lists"):
        fuse(FusionConfig(), lists[:1])


def test_document_scores_max_and_sum_of_top_n() -> None:
    ranked = [(2, 0.9), (0, 0.85), (1, 0.8), (3, 0.1)]
    labels = ["a", "a", "b", "c"]
    assert document_scores(ranked, labels, 10) == {"b": 0.9, "a": 0.85, "c": 0.1}
    summed = document_scores(ranked, labels, 10, DocScoring("sum", 2))
    assert list(summed) == ["a", "b", "c"]  # shifted by the floor 0.1: a 0.75 + 0.7, b 0.8, c 0
    assert summed["a"] == pytest.approx(1.45) and summed["b"] == pytest.approx(0.8)
    assert document_scores(ranked, labels, 10, DocScoring("sum", 1)).keys() == {"b", "a", "c"}
    assert list(document_scores(ranked, labels, 1, DocScoring("sum", 2))) == ["a"]
    with pytest.raises(ValueError):
        DocScoring("mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        DocScoring("sum", 0)
    assert DocScoring.from_dict(DocScoring("sum", 3).to_dict()) == DocScoring("sum", 3)


def test_document_scores_are_strictly_decreasing() -> None:
    out = document_scores([(0, 0.5), (1, 0.5), (2, 0.5)], ["a", "b", "c"], 10)
    values = list(out.values())
    assert all(x > y for x, y in zip(values, values[1:], strict=False))


def test_the_untuned_default_is_equal_weight_zscore_and_rrf_stays_available() -> None:
    default = untuned_fusion()
    assert (default.kind, default.normalization, default.methods) == ("convex", "zscore", ("dense", "bm25"))
    assert default.weights[0] == default.weights[1] and default.source.startswith("default")
    rrf = untuned_fusion("rrf", rrf_k=17, depth=50)
    assert (rrf.kind, rrf.rrf_k, rrf.depth, rrf.weights) == ("rrf", 17, 50, (1.0, 1.0))
    assert untuned_fusion("minmax").normalization == "minmax"
    lists = [[("a", 0.9), ("b", 0.8), ("c", 0.1)], [("c", 9.0), ("b", 1.0)]]
    assert fuse(default, lists) == convex_combination(lists, [1.0, 1.0], "zscore")
    with pytest.raises(ValueError, match="untuned fusion"):
        untuned_fusion("borda")
