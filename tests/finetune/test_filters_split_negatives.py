"""Query filters, the train/dev split by document, and hard-negative mining."""

from __future__ import annotations

import numpy as np
import pytest

from finetune.filters import apply_filters, drop_duplicates, drop_short, round_trip
from finetune.negatives import mine_hard_negatives
from finetune.queries import HeuristicGenerator, SyntheticQuery
from finetune.split import split_by_document
from indexing.backends.bm25 import Bm25Index
from indexing.chunks import Chunk
from mlsearch.errors import FinetuneError
from mlsearch.settings import Settings


def q(text: str, doc: str = "d", position: int = 0) -> SyntheticQuery:
    return SyntheticQuery(text=text, kind="heading", position=position, chunk_id=f"c{position}", doc_id=doc,
                          positive="p")


def test_drop_duplicates_keeps_the_first_of_equal_normalised_texts() -> None:
    kept = drop_duplicates([q("What is Adam?", position=1), q("what is  adam", position=2), q("adam optimizer")])
    assert [x.position for x in kept] == [1, 0]


def test_drop_short_needs_two_content_terms() -> None:
    kept = drop_short([q("what is it?"), q("adam"), q("the of and"), q("adam learning rate")])
    assert [x.text for x in kept] == ["adam learning rate"]


def test_round_trip_keeps_queries_whose_chunk_bm25_ranks_high(sample_chunks: list[tuple[int, Chunk]]) -> None:
    index = Bm25Index(Settings())
    index.build([chunk.embedding_text for _, chunk in sample_chunks])
    queries = HeuristicGenerator(seed=0).generate(sample_chunks, 3)
    kept = round_trip(queries, index, top_n=1)
    assert 0 < len(kept) < len(queries)
    for query in kept:
        _, ids = index.search(query.text, 1)
        assert ids[0][0] == query.position
    filtered, removed = apply_filters(queries, index, round_trip_top=1)
    assert set(removed) == {"too_short", "duplicates", "round_trip"}
    assert len(filtered) + sum(removed.values()) == len(queries)


def test_split_is_by_document(sample_chunks: list[tuple[int, Chunk]]) -> None:
    queries = HeuristicGenerator(seed=0).generate(sample_chunks, 3)
    split = split_by_document(queries, dev_fraction=0.34, seed=1)
    train_docs = {x.doc_id for x in split.train}
    dev_docs = {x.doc_id for x in split.dev}
    assert train_docs and dev_docs and not train_docs & dev_docs
    assert train_docs == split.train_docs and dev_docs == split.dev_docs
    assert len(split.dev_docs) == 3  # ceil(0.34 * 6)
    assert sorted(map(id, split.train + split.dev)) == sorted(map(id, queries))
    assert split_by_document(queries, 0.34, seed=1) == split


def test_split_needs_two_documents() -> None:
    with pytest.raises(FinetuneError, match="at least 2"):
        split_by_document([q("adam learning rate", doc="a"), q("adam momentum rate", doc="a")])
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_by_document([q("x", doc="a"), q("y", doc="b")], dev_fraction=1.0)
    split = split_by_document([q("x", doc="a"), q("y", doc="b")], dev_fraction=0.9)
    assert len(split.train_docs) == 1 and len(split.dev_docs) == 1


def test_hard_negatives_come_from_other_allowed_documents() -> None:
    rng = np.random.default_rng(0)
    chunks = rng.standard_normal((12, 8)).astype(np.float32)
    docs = ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    positives = [0, 5, 9, 1]
    queries = chunks[positives] + 0.01 * rng.standard_normal((4, 8)).astype(np.float32)
    negatives = mine_hard_negatives(queries, chunks, docs, positives, allowed_docs={"a", "b"})
    for positive, negative in zip(positives, negatives, strict=True):
        assert negative is not None
        assert docs[negative] != docs[positive] and docs[negative] in {"a", "b"}
    # the chosen negative is the best-scoring qualifying candidate
    scores = queries[0] @ chunks.T
    candidates = [i for i in range(12) if docs[i] == "b" and scores[i] < scores[0] * 0.95]
    assert negatives[0] == max(candidates, key=lambda i: scores[i])


def test_hard_negatives_skip_likely_false_negatives_and_fall_back() -> None:
    chunks = np.array([[1.0, 0.0], [0.99, 0.01], [0.0, 1.0]], dtype=np.float32)
    docs = ["a", "b", "c"]
    negatives = mine_hard_negatives(np.array([[1.0, 0.0]], np.float32), chunks, docs, [0])
    assert negatives == [2]  # chunk 1 scores within 5% of the positive: probably an unlabelled answer
    assert mine_hard_negatives(np.array([[1.0, 0.0]], np.float32), chunks, docs, [0], allowed_docs={"a"}) == [None]
