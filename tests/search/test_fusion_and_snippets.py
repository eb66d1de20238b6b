"""Reciprocal rank fusion and snippets, on hand-checked examples."""

from __future__ import annotations

import pytest

from search.fusion import reciprocal_rank_fusion
from search.snippets import make_snippet


def test_rrf_matches_a_hand_computed_example() -> None:
    fused = dict(reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]], k=60))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    order = [item for item, _ in reciprocal_rank_fusion([["a", "b", "c"], ["c", "a"]], k=60)]
    assert order == ["a", "c", "b"]


def test_rrf_breaks_ties_by_best_rank_then_first_seen() -> None:
    order = [item for item, _ in reciprocal_rank_fusion([["x", "y"], ["y", "x"]])]
    assert order == ["x", "y"]
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"]], k=0)


def test_snippet_centres_on_the_query_terms() -> None:
    text = ("filler words here. " * 40) + "The optimizer uses momentum to speed up descent. " + ("more filler. " * 40)
    snippet = make_snippet(text, "optimizers with momentum", width=120)
    assert "momentum" in snippet and "optimizer" in snippet
    assert snippet.startswith("…") and snippet.endswith("…")
    assert len(snippet) <= 125


def test_short_text_is_its_own_snippet() -> None:
    assert make_snippet("short  text\nhere", "x") == "short text here"
