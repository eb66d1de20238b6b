"""BM25 options: the analyzer and RM3 expansion, saved with the index and read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexing.backends.base import Piece
from indexing.backends.bm25 import Bm25Config, Bm25Index
from indexing.backends.text import Analyzer, analyze

TEXTS = [
    "Dropout randomly zeroes activations during training to regularize a network.",
    "Adam optimizer adapts the learning rate of each parameter from gradient moments.",
    "Adam momentum and adaptive moments: the optimizer keeps running averages of gradients.",
    "FAISS and Annoy search dense vectors by inner product.",
    "Momentum accelerates stochastic gradient descent along consistent directions.",
    "The Kolmogorov-Smirnov test compares two samples for distribution drift.",
]


def test_analyzer_options() -> None:
    assert Analyzer()("The running networks") == analyze("The running networks") == ["run", "network"]
    assert Analyzer(stemmer="none")("The running networks") == ["running", "networks"]
    assert Analyzer(stop_words="none")("The running networks") == ["the", "run", "network"]
    assert Analyzer(stemmer="porter")("generalization") != Analyzer(stemmer="none")("generalization")
    with pytest.raises(ValueError, match="unknown stemmer 'latin'"):
        Analyzer(stemmer="latin")  # type: ignore[arg-type]


def test_unstemmed_index_matches_only_the_exact_form() -> None:
    stemmed, exact = Bm25Index(Bm25Config()), Bm25Index(Bm25Config(stemmer="none"))
    stemmed.build(TEXTS)
    exact.build(TEXTS)
    assert 0 in stemmed.search("regularizing", 3)[1][0].tolist()  # regularize ~ regularizing
    assert exact.search("regularizing", 3)[1].size == 0


def test_rm3_expansion_finds_texts_that_share_only_feedback_terms() -> None:
    plain, expanded = Bm25Index(Bm25Config()), Bm25Index(Bm25Config(rm3_terms=20, rm3_docs=2))
    plain.build(TEXTS)
    expanded.build(TEXTS)
    plain_ids = plain.search("adam optimizer", 6)[1][0].tolist()
    expanded_scores, expanded_ids = expanded.search("adam optimizer", 6)
    assert set(plain_ids) == {1, 2}
    assert expanded_ids[0][:2].tolist() in ([1, 2], [2, 1])  # the original matches stay on top
    assert 4 in expanded_ids[0].tolist()  # "momentum", "gradient" come from the feedback texts
    assert np.all(np.diff(expanded_scores[0]) <= 0)
    assert expanded.search("zebra", 3)[1].size == 0


def test_options_are_saved_and_win_over_the_config_given_at_load(tmp_path: Path) -> None:
    config = Bm25Config(k1=0.9, b=0.4, stemmer="none", stop_words="none", rm3_terms=5)
    index = Bm25Index(config)
    index.build(TEXTS)
    scores, ids = index.search("adam optimizer", 4)
    index.save(tmp_path / "bm25")
    loaded = Bm25Index.load(tmp_path / "bm25", Bm25Config())
    assert loaded.config == config and loaded.describe()["analyzer"] == "no stop words, no stemming"
    again_scores, again_ids = loaded.search("adam optimizer", 4)
    np.testing.assert_array_equal(again_ids, ids)
    np.testing.assert_allclose(again_scores, scores, rtol=1e-5)


def test_a_loaded_index_splices_fresh_texts_with_its_own_analyzer(tmp_path: Path) -> None:
    index = Bm25Index(Bm25Config(stemmer="none"))
    index.build(TEXTS[:3])
    index.save(tmp_path / "bm25")
    loaded = Bm25Index.load(tmp_path / "bm25", Bm25Config())  # a document update loads the previous version
    loaded.splice([Piece(3, start=0), Piece(1)], ["Regularizing networks with weight decay."])
    assert loaded.search("regularizing", 4)[1][0].tolist() == [3]  # the exact form only: not stemmed
    clean = Bm25Index(Bm25Config(stemmer="none"))
    clean.build([*TEXTS[:3], "Regularizing networks with weight decay."])
    np.testing.assert_allclose(loaded.search("networks", 4)[0], clean.search("networks", 4)[0], rtol=1e-6)


def test_scores_computed_a_few_texts_at_a_time_equal_those_computed_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from indexing.backends import bm25

    whole = Bm25Index(Bm25Config())
    whole.build(TEXTS)
    monkeypatch.setattr(bm25, "SCORE_BLOCK", 2)  # three blocks of two texts
    blocked = Bm25Index(Bm25Config())
    blocked.build(TEXTS)
    for query in ("adam gradient moments", "dense vectors", "drift test samples"):
        expected_scores, expected_ids = whole.search(query, len(TEXTS))
        scores, ids = blocked.search(query, len(TEXTS))
        assert np.array_equal(ids, expected_ids) and np.array_equal(scores, expected_scores)
        assert len(ids[0]) >= 1
