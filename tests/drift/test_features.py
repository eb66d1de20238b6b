"""Measuring a query against the index that answered it, and the reference's out-of-sample features."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from drift.features import FeatureSpace, QueryObservation, describe_feature, observe_queries, observe_query
from indexing.backends.configs import search_config
from mlsearch.settings import Settings
from search.searcher import Searcher
from tests.fakes import HashingEncoder


@pytest.fixture
def searcher(built_index: Path, settings: Settings, fake_encoder: HashingEncoder) -> Searcher:
    return Searcher.open(built_index, search_config(settings), encoder=fake_encoder)


def test_observe_query_measures_the_named_features(searcher: Searcher) -> None:
    query = "dropout rate for hidden layers"
    observation = observe_query(searcher, query, method="dense", result_count=3)
    assert observation.text == query and observation.result_count == 3 and observation.method == "dense"
    assert np.allclose(observation.embedding, searcher.embed_query(query))
    assert observation.token_count == searcher.encoder.count_tokens([query])[0]
    assert observation.unknown_share == pytest.approx(1 - searcher.backend("bm25").vocabulary_share(query))
    assert observation.keyword_match == pytest.approx(searcher.backend("bm25").best_match_share(query))
    best = searcher.retrieve(query, k=1, method="dense", backend="faiss")[0][1]
    assert observation.top_score == pytest.approx(best, abs=1e-5)


def test_off_topic_queries_score_lower_and_use_unknown_words(searcher: Searcher) -> None:
    inside, outside = observe_queries(searcher, ["dropout during training", "best sourdough bread recipe"])
    assert inside.top_score > outside.top_score
    assert inside.unknown_share == 0.0 and outside.unknown_share == 1.0
    assert inside.keyword_match > 0.0 and outside.keyword_match == 0.0


def test_missing_backends_give_missing_features(searcher: Searcher) -> None:
    class KeywordOnly:
        encoder = searcher.encoder
        built_backends = ["lsi"]
        backend = searcher.backend
        embed_query = searcher.embed_query

    observation = observe_query(KeywordOnly(), "adam optimizer")  # type: ignore[arg-type]
    assert math.isnan(observation.top_score)
    assert math.isnan(observation.keyword_match)  # only BM25 measures it
    assert observation.unknown_share == pytest.approx(1 - searcher.backend("lsi").vocabulary_share("adam optimizer"))


def _high_dimensional(rng: np.random.Generator, count: int, dimension: int = 384) -> list[QueryObservation]:
    vectors = 0.6 * np.ones(dimension) / np.sqrt(dimension) + rng.standard_normal((count, dimension)) / np.sqrt(
        dimension)
    return [QueryObservation(embedding=v.astype(np.float32), token_count=8, unknown_share=0.0, top_score=0.5)
            for v in vectors]


def test_reference_columns_are_out_of_sample() -> None:
    rng = np.random.default_rng(0)
    reference = _high_dimensional(rng, 50)
    space = FeatureSpace(np.stack([o.embedding for o in reference]), components=2)
    in_sample = space.transform(reference)
    out_of_sample = space.reference_columns(reference)
    # in high dimensions a query sits clearly closer to a centroid that includes it: fresh queries of the same
    # distribution look like the out-of-sample reference, not like the in-sample one
    fresh = space.transform(_high_dimensional(rng, 1000))
    gap_out = abs(fresh["centroid_distance"].mean() - out_of_sample["centroid_distance"].mean())
    gap_in = abs(fresh["centroid_distance"].mean() - in_sample["centroid_distance"].mean())
    assert gap_out < gap_in / 2
    assert np.all(out_of_sample["centroid_distance"] > in_sample["centroid_distance"])
    # components fitted on the reference spread it wider than new queries; cross-fitting removes most of that
    assert abs(np.var(out_of_sample["pc1"]) - np.var(fresh["pc1"])) < abs(np.var(in_sample["pc1"]) - np.var(
        fresh["pc1"]))
    assert space.names == ["top_score", "token_count", "unknown_share", "keyword_match", "centroid_distance", "pc1",
                           "pc2"]
    assert "principal component 2" in describe_feature("pc2")
