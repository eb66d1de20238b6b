"""The overlap figures of ``/compare`` on hand-checked examples, and comparisons over the tiny index."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexing.backends.configs import build_config, search_config
from mlsearch.errors import BackendUnavailableError, BadQueryError
from mlsearch.settings import Settings
from search.compare import compare, jaccard, overlap, required_backends, run_search
from search.searcher import Searcher
from tests.fakes import HashingEncoder


def test_overlap_of_two_rankings_by_hand() -> None:
    # lsi:   a b c d        dense: c a e f
    # both: {a, c}; union {a, b, c, d, e, f} -> 2 / 6
    # a: rank 1 -> 2 (change +1); c: rank 3 -> 1 (change -2)
    figures = overlap({"lsi": ["a", "b", "c", "d"], "dense": ["c", "a", "e", "f"]})
    assert figures.jaccard_at_k == pytest.approx(2 / 6, abs=1e-6)
    assert figures.pairwise_jaccard == {"lsi|dense": pytest.approx(2 / 6, abs=1e-6)}
    assert figures.shared_ids == ["a", "c"]
    assert [(c.id, c.ranks, c.change) for c in figures.rank_changes] == [
        ("a", {"lsi": 1, "dense": 2}, 1),
        ("c", {"lsi": 3, "dense": 1}, -2),
    ]
    assert figures.only_in == {"lsi": ["b", "d"], "dense": ["e", "f"]}


def test_overlap_of_three_rankings_by_hand() -> None:
    # x: a b c   y: b c d   z: c b e   -> in all: {b, c}; union {a, b, c, d, e} -> 2 / 5
    figures = overlap({"x": ["a", "b", "c"], "y": ["b", "c", "d"], "z": ["c", "b", "e"]})
    assert figures.jaccard_at_k == pytest.approx(0.4)
    assert figures.pairwise_jaccard == {"x|y": 0.5, "x|z": 0.5, "y|z": 0.5}
    assert figures.shared_ids == ["b", "c"]
    assert [(c.id, c.change) for c in figures.rank_changes] == [("b", 0), ("c", -2)]
    assert figures.only_in == {"x": ["a"], "y": ["d"], "z": ["e"]}


def test_overlap_edge_cases() -> None:
    same = overlap({"p": ["a", "b"], "q": ["a", "b"]})
    assert same.jaccard_at_k == 1.0 and [c.change for c in same.rank_changes] == [0, 0]
    disjoint = overlap({"p": ["a"], "q": ["b"]})
    assert disjoint.jaccard_at_k == 0.0 and disjoint.shared_ids == [] and disjoint.rank_changes == []
    empty = overlap({"p": [], "q": []})
    assert empty.jaccard_at_k == 0.0 and empty.only_in == {"p": [], "q": []}
    assert jaccard([], []) == 0.0 and jaccard(["a", "a"], ["a"]) == 1.0
    with pytest.raises(ValueError, match="at least two"):
        overlap({"p": ["a"]})


def test_required_backends() -> None:
    assert required_backends("dense", "annoy") == ["annoy"]
    assert required_backends("hybrid", "faiss") == ["faiss", "bm25"]
    assert required_backends("lsi", "faiss") == ["lsi"]
    assert required_backends("bm25", "faiss") == ["bm25"]
    assert required_backends("lsi", "elasticsearch") == ["lsi"]
    for method in ("dense", "bm25", "hybrid"):
        assert required_backends(method, "elasticsearch") == ["elasticsearch"]
    with pytest.raises(BadQueryError, match="unknown method"):
        required_backends("semantic", "faiss")


@pytest.fixture
def searcher(built_index: Path, settings: Settings, fake_encoder: HashingEncoder) -> Searcher:
    return Searcher.open(built_index, search_config(settings), encoder=fake_encoder)


def test_compare_runs_every_method_and_measures_their_overlap(searcher: Searcher) -> None:
    result = compare(searcher, "adam learning rate", k=4, methods=["lsi", "dense", "bm25"])
    assert list(result.runs) == ["lsi", "dense", "bm25"]
    for method, run in result.runs.items():
        expected = searcher.search("adam learning rate", k=4, method=method)
        assert [hit.id for hit in run.hits] == [hit.id for hit in expected.hits]
    ids = {method: [hit.id for hit in run.hits] for method, run in result.runs.items()}
    assert result.overlap == overlap(ids)


def test_compare_rejects_bad_method_lists(searcher: Searcher) -> None:
    with pytest.raises(BadQueryError, match="at least two"):
        compare(searcher, "adam", k=3, methods=["dense"])
    with pytest.raises(BadQueryError, match="once"):
        compare(searcher, "adam", k=3, methods=["dense", "dense"])


def test_missing_backends_are_named_before_anything_runs(
    tiny_corpus: Path, settings: Settings, fake_encoder: HashingEncoder
) -> None:
    from indexing.build import build_index

    build_index(build_config(settings), fake_encoder, corpus_dir=tiny_corpus, backends=["faiss", "lsi"])
    searcher = Searcher.open(settings.index_dir, search_config(settings), encoder=fake_encoder)
    before = fake_encoder.encoded_texts
    with pytest.raises(BackendUnavailableError) as error:
        compare(searcher, "adam", k=3, methods=["dense", "hybrid"])
    assert error.value.backend == "bm25" and fake_encoder.encoded_texts == before
    with pytest.raises(BackendUnavailableError, match="not built") as error:
        run_search(searcher, "adam", 3, "dense", "annoy")
    assert error.value.backend == "annoy"
    assert run_search(searcher, "adam", 3, "lsi", "annoy").hits
