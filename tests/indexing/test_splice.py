"""Splicing backends: a new version derived from the previous one equals (or, for LSI, approximates) a build."""

from __future__ import annotations

import os
import random
from pathlib import Path

import bm25s
import numpy as np
import pytest

from indexing.backends.annoy_index import AnnoyConfig, AnnoyIndex
from indexing.backends.base import Piece, splice_rows
from indexing.backends.bm25 import Bm25Config, Bm25Index
from indexing.backends.faiss_index import FaissConfig, FaissIndex
from indexing.backends.lsi import LsiConfig, LsiIndex
from indexing.backends.text import analyze

WORDS = ("gradient boosting trees learning rate shrinkage residual variance bias kernel margin attention "
         "transformer token embedding cosine vector index cluster centroid outlier drift window the of").split()


def _texts(rng: random.Random, n: int) -> list[str]:
    return [" ".join(rng.choices(WORDS, k=rng.randrange(0 if i == 3 else 3, 30))) for i in range(n)]


def _edit(old: list[str], rng: random.Random) -> tuple[list[Piece], list[str], list[str]]:
    """Replace, drop and insert texts: the pieces, the fresh texts, and the new texts in full."""
    pieces = [Piece(5, 0), Piece(2), Piece(10, 8), Piece(3), Piece(len(old) - 30, 30)]
    fresh = _texts(rng, 5)
    new = old[:5] + fresh[:2] + old[8:18] + fresh[2:] + old[30:]
    return pieces, fresh, new


def test_splice_rows_lays_out_kept_runs_and_fresh_rows() -> None:
    old = np.arange(10)[:, None] * np.ones((1, 2))
    rows = splice_rows(old, np.full((2, 2), -1.0), [Piece(3, 0), Piece(2), Piece(2, 8)])
    assert rows[:, 0].tolist() == [0, 1, 2, -1, -1, 8, 9]
    with pytest.raises(ValueError, match="fresh rows"):
        splice_rows(old, np.zeros((3, 2)), [Piece(1)])


def _arrays(index: Bm25Index) -> dict[str, object]:
    assert index._retriever is not None
    scores = index._retriever.scores
    return {"data": np.asarray(scores["data"]), "indices": np.asarray(scores["indices"]),
            "indptr": np.asarray(scores["indptr"]), "vocab": index._retriever.vocab_dict}


def test_bm25_scores_as_bm25s_indexes() -> None:
    texts = _texts(random.Random(1), 60)
    ours = Bm25Index(Bm25Config())
    ours.build(texts)
    theirs = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    theirs.index([analyze(t) for t in texts], show_progress=False)
    for query in ["gradient boosting", "drift window cosine", "vector"]:
        expected = theirs.get_scores(analyze(query))
        np.testing.assert_allclose(ours._retriever.get_scores(analyze(query)), expected, rtol=1e-6)


def test_bm25_splice_after_save_and_load_equals_a_clean_build(tmp_path: Path) -> None:
    rng = random.Random(2)
    old = _texts(rng, 40)
    first = Bm25Index(Bm25Config())
    first.build(old)
    first.save(tmp_path / "v1")
    pieces, fresh, new = _edit(old, rng)
    spliced = Bm25Index.load(tmp_path / "v1", Bm25Config())
    spliced.splice(pieces, fresh)
    spliced.save(tmp_path / "v2")
    clean = Bm25Index(Bm25Config())
    clean.build(new)
    again = Bm25Index.load(tmp_path / "v2", Bm25Config())
    for a, b in [(_arrays(spliced), _arrays(clean)), (_arrays(again), _arrays(clean))]:
        assert a["vocab"] == b["vocab"]
        for key in ("data", "indices", "indptr"):
            np.testing.assert_array_equal(a[key], b[key])
    assert len(again) == len(new)
    np.testing.assert_array_equal(again._terms_of, clean._terms_of)
    np.testing.assert_array_equal(again._counts, clean._counts)


def test_bm25_splice_drops_terms_no_text_holds_any_more() -> None:
    index = Bm25Index(Bm25Config())
    index.build(["zebra crossing", "gradient descent"])
    index.splice([Piece(1), Piece(1, 1)], ["learning rate"])
    assert index.vocabulary_share("zebra") == 0.0
    assert index.search("zebra", 5)[1].size == 0
    assert index.search("learning", 5)[1].tolist() == [[0]]


def test_bm25_without_stored_terms_refuses_to_splice(tmp_path: Path) -> None:
    index = Bm25Index(Bm25Config())
    index.build(["gradient descent"])
    index.save(tmp_path / "b")
    (tmp_path / "b" / "terms.npy").unlink()
    loaded = Bm25Index.load(tmp_path / "b", Bm25Config())
    with pytest.raises(ValueError, match="no stored terms"):
        loaded.splice([Piece(1, 0)], [])


@pytest.mark.parametrize("quantization", ["none", "int8"])
def test_faiss_splice_after_load_equals_a_clean_build(quantization: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    old = rng.standard_normal((40, 16)).astype(np.float32)
    fresh = rng.standard_normal((5, 16)).astype(np.float32)
    pieces = [Piece(5, 0), Piece(2), Piece(10, 8), Piece(3), Piece(10, 30)]
    config = FaissConfig(quantization=quantization)  # type: ignore[arg-type]
    first = FaissIndex(16, config)
    first.add(old)
    first.save(tmp_path / "v1")
    spliced = FaissIndex.load(tmp_path / "v1", config)
    spliced.splice(pieces, fresh)
    spliced.save(tmp_path / "v2")
    clean = FaissIndex(16, config)
    clean.add(splice_rows(old, fresh, pieces))
    queries = rng.standard_normal((4, 16)).astype(np.float32)
    for index in (spliced, FaissIndex.load(tmp_path / "v2", config)):
        assert len(index) == 30
        for got, want in zip(index.search(queries, 7), clean.search(queries, 7), strict=True):
            np.testing.assert_array_equal(got, want)


def test_lsi_folds_fresh_texts_in_and_a_build_refits(tmp_path: Path) -> None:
    rng = random.Random(4)
    old = _texts(rng, 40)
    first = LsiIndex(LsiConfig(dimensions=8))
    first.build(old)
    first.save(tmp_path / "v1")
    pieces, fresh, new = _edit(old, rng)
    spliced = LsiIndex.load(tmp_path / "v1", LsiConfig(dimensions=8))
    spliced.splice(pieces, fresh)
    assert len(spliced) == len(new)
    assert spliced.describe()["pending_refit"] == 5 + 15  # five texts in, fifteen out
    kept = np.asarray(first._documents)[8:18]
    np.testing.assert_array_equal(spliced._documents[7:17], kept)  # kept rows are not touched
    folded = LsiIndex(LsiConfig(dimensions=8))
    folded._vectorizer, folded._components = first._vectorizer, first._components
    np.testing.assert_allclose(spliced._documents[5], folded._project(fresh[0]), atol=1e-6)
    spliced.save(tmp_path / "v2")
    assert LsiIndex.load(tmp_path / "v2", LsiConfig(dimensions=8)).describe()["pending_refit"] == 20
    spliced.build(new)
    assert spliced.describe()["pending_refit"] == 0


def test_annoy_overlay_finds_kept_and_fresh_vectors_at_their_new_positions(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    old = rng.standard_normal((40, 8)).astype(np.float32)
    config = AnnoyConfig(trees=20, search_k=4000)  # every node searched: the forest answers exactly here
    first = AnnoyIndex(8, config)
    first.add(old)
    first.save(tmp_path / "v1")
    layout = old
    previous = tmp_path / "v1"
    for step in range(2):  # a splice of a splice composes the overlays
        fresh = rng.standard_normal((5, 8)).astype(np.float32)
        pieces = [Piece(5, 0), Piece(2), Piece(10, 8), Piece(3), Piece(len(layout) - 30, 30)]
        spliced = AnnoyIndex.load(previous, config)
        spliced.splice(pieces, fresh)
        layout = splice_rows(layout, fresh, pieces)
        previous = tmp_path / f"v{step + 2}"
        spliced.save(previous)
        assert os.path.samefile(previous / AnnoyIndex.FILE, tmp_path / "v1" / AnnoyIndex.FILE)
    loaded = AnnoyIndex.load(previous, config)
    assert len(loaded) == len(layout)
    assert loaded.describe()["pending_refit"] == 2 * (5 + 15)
    queries = rng.standard_normal((6, 8)).astype(np.float32)
    scores, ids = loaded.search(queries, 7)
    exact = queries @ layout.T
    for row in range(len(queries)):
        expected = np.argsort(-exact[row], kind="stable")[:7]
        assert ids[row].tolist() == expected.tolist()
        np.testing.assert_allclose(scores[row], exact[row][expected], rtol=1e-5, atol=1e-5)
