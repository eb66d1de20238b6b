"""Score smoothing over the chunks' nearest-neighbour graph."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from indexing.backends.configs import build_config, search_config
from indexing.build import build_index
from indexing.neighbours import GRAPH_DIR
from mlsearch.configs import DEFAULT_SMOOTHING, SmoothingConfig
from mlsearch.settings import Settings
from search.searcher import Searcher
from search.smoothing import smooth
from tests.fakes import HashingEncoder, updated_settings


def test_smoothing_lifts_a_chunk_whose_neighbours_score_and_sinks_a_lone_match() -> None:
    graph = np.array([[1], [0], [3], [2]], np.int32)  # 0 and 1 are alike; 2 and 3 are alike
    ranked = [(2, 1.0), (0, 0.9), (1, 0.8)]  # 2 matches alone; 0 and 1 both match
    smoothed = smooth(ranked, graph, 0.4)
    assert [p for p, _ in smoothed] == [0, 1, 2]
    assert dict(smoothed)[2] == pytest.approx(0.6)  # its neighbour 3 is not in the list: it counts 0
    assert smooth(ranked, graph, 0.0) == ranked


def test_smoothing_settings_reach_the_search_config(settings: Settings) -> None:
    assert search_config(settings).smoothing == DEFAULT_SMOOTHING and DEFAULT_SMOOTHING.enabled
    off = search_config(updated_settings(settings, smoothing_weight=0.0)).smoothing
    assert not off.enabled
    for bad in ({"weight": 1.0}, {"weight": -0.1}, {"neighbours": 0}):
        with pytest.raises(ValueError):
            SmoothingConfig(**bad)  # type: ignore[arg-type]


def _searcher(built_index: Path, settings: Settings, **updates: object) -> Searcher:
    return Searcher.open(built_index, search_config(updated_settings(settings, **updates)), encoder=HashingEncoder())


def test_bm25_is_smoothed_by_default_and_raw_when_off(built_index: Path, settings: Settings) -> None:
    smoothed = _searcher(built_index, settings)
    raw = _searcher(built_index, settings, smoothing_weight=0.0)
    large = _searcher(built_index, settings, smoothing_max_chunks=1)  # the saved graph is read at any size
    assert smoothed.neighbours is not None and raw.neighbours is None
    assert np.array_equal(large.neighbours, smoothed.neighbours)
    query = "adam learning rate"
    hits = [h.position for h in smoothed.search(query, k=10, method="bm25").hits]
    assert hits
    expected = smooth([(h.position, h.score) for h in raw.search(query, k=300, method="bm25").hits],
                      smoothed.neighbours, DEFAULT_SMOOTHING.weight)[:10]
    assert hits == [p for p, _ in expected]
    assert [h.position for h in smoothed.search(query, k=10, method="dense").hits] == [
        h.position for h in raw.search(query, k=10, method="dense").hits]  # dense is never smoothed


def test_smoothing_keeps_the_tag_filter(built_index: Path, settings: Settings) -> None:
    searcher = _searcher(built_index, settings)
    hits = searcher.search("similarity search of a sample", k=10, method="bm25", tags=["drift"]).hits
    assert hits and {h.doc_id for h in hits} <= {"drift"}


def test_smoothing_equals_its_definition_on_a_random_graph() -> None:
    rng = np.random.default_rng(3)
    graph = rng.integers(0, 200, size=(200, 4)).astype(np.int32)
    positions = rng.choice(200, size=60, replace=False)
    ranked = [(int(p), float(s)) for p, s in zip(positions, rng.random(60), strict=True)]
    known = dict(ranked)
    expected = {p: 0.7 * s + 0.3 * float(np.mean([known.get(int(n), 0.0) for n in graph[p]])) for p, s in ranked}
    smoothed = smooth(ranked, graph, 0.3)
    assert [p for p, _ in smoothed] == sorted(expected, key=lambda p: -expected[p])
    assert all(v == pytest.approx(expected[p]) for p, v in smoothed)


def test_no_graph_is_computed_for_an_index_that_nothing_would_smooth(
    tiny_corpus: Path, settings: Settings, tmp_path: Path
) -> None:
    custom = updated_settings(settings, index_dir=tmp_path / "dense-only")
    build_index(build_config(custom), HashingEncoder(), corpus_dir=tiny_corpus, backends=["faiss"])
    searcher = Searcher.open(custom.index_dir, search_config(custom), encoder=HashingEncoder())
    assert searcher.config.smoothing.enabled and searcher.neighbours is None  # no keyword backend to smooth


def test_a_version_without_a_saved_graph_computes_one_up_to_the_limit(
    tiny_corpus: Path, settings: Settings, tmp_path: Path
) -> None:
    custom = updated_settings(settings, index_dir=tmp_path / "old")
    build_index(build_config(custom), HashingEncoder(), corpus_dir=tiny_corpus, backends=["faiss", "bm25"])
    saved = _searcher(custom.index_dir, custom).neighbours
    version = Searcher.open(custom.index_dir, search_config(custom), encoder=HashingEncoder()).directory
    shutil.rmtree(version / GRAPH_DIR)  # as an index built before graphs were saved
    computed = _searcher(custom.index_dir, custom)
    assert computed.neighbours is not None and np.array_equal(computed.neighbours, saved)
    assert computed.smoothing_graph is not None and computed.smoothing_graph.source == "computed"
    assert _searcher(custom.index_dir, custom, smoothing_max_chunks=1).neighbours is None  # too large to compute
    wider = _searcher(custom.index_dir, custom, smoothing_neighbours=12)  # more than the saved graph holds
    assert wider.neighbours is not None and wider.neighbours.shape[1] == min(12, wider.chunk_count - 1)
