"""LSI and BM25: ranking sanity, vocabulary share, and loading without pickle."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from indexing.backends.configs import backend_config
from indexing.backends.lsi import LsiConfig
from indexing.backends.registry import keyword_backend
from mlsearch.settings import Settings

TEXTS = [
    "Dropout randomly zeroes activations during training to regularize a network.",
    "Adam optimizer adapts the learning rate of each parameter from gradient moments.",
    "FAISS and Annoy search dense vectors by inner product.",
    "The Kolmogorov-Smirnov test compares two samples for distribution drift.",
    "Learning rate schedules such as cosine decay and warmup help optimizers converge.",
]


@pytest.mark.parametrize("name", ["lsi", "bm25"])
def test_keyword_backend_ranks_matching_texts_first(name: str, tmp_path: Path) -> None:
    settings = Settings(lsi_dimensions=3)
    index = keyword_backend(name)(backend_config(name, settings))
    index.build(TEXTS)
    assert len(index) == len(TEXTS)
    scores, ids = index.search("learning rates for optimizers", 2)
    assert set(ids[0].tolist()) == {1, 4}
    assert np.all(np.diff(scores[0]) <= 0)
    assert index.search("zebra giraffe", 3)[1].size == 0  # no known term, no result
    assert index.vocabulary_share("dropout zebra") == pytest.approx(0.5)
    assert index.vocabulary_share("the of and") == 1.0  # nothing but stop words

    index.save(tmp_path / name)
    loaded = keyword_backend(name).load(tmp_path / name, backend_config(name, settings))
    again_scores, again_ids = loaded.search("learning rates for optimizers", 2)
    np.testing.assert_array_equal(again_ids, ids)
    np.testing.assert_allclose(again_scores, scores, rtol=1e-5)


@pytest.mark.parametrize("name", ["lsi", "bm25"])
def test_keyword_index_loads_without_running_pickle(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = keyword_backend(name)(backend_config(name, Settings(lsi_dimensions=3)))
    index.build(TEXTS)
    index.save(tmp_path / name)
    suffixes = {p.suffix for p in (tmp_path / name).iterdir()}
    assert suffixes <= {".json", ".npy"}, suffixes

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle must not be used to load an index")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    loaded = keyword_backend(name).load(tmp_path / name, backend_config(name, Settings()))
    assert loaded.search("drift test", 1)[1][0].tolist() == [3]


def test_lsi_handles_a_single_document(tmp_path: Path) -> None:
    index = keyword_backend("lsi")(LsiConfig())
    index.build(["only one document about dropout"])
    assert index.search("dropout", 5)[1][0].tolist() == [0]


def test_bm25_best_match_share_is_high_when_one_text_covers_the_query() -> None:
    index = keyword_backend("bm25")(backend_config("bm25", Settings()))
    index.build(TEXTS)
    covered = index.best_match_share("learning rate schedules warmup")
    scattered = index.best_match_share("dropout faiss kolmogorov")  # every term known, each in another text
    unknown = index.best_match_share("zebra giraffe")
    assert 0.0 < scattered < covered <= 1.0
    assert unknown == 0.0
    assert 0.0 < index.best_match_share("dropout zebra") < index.best_match_share("dropout")
    assert np.isnan(index.best_match_share("the of and"))  # nothing but stop words
