"""Query filters, the train/dev split (by document, section or block), and hard-negative mining."""

from __future__ import annotations

import re

import numpy as np
import pytest

from finetune.filters import apply_filters, drop_duplicates, drop_short, round_trip
from finetune.negatives import mine_hard_negatives
from finetune.queries import HeuristicGenerator, SyntheticQuery
from finetune.split import QuerySplit, describe_split, split_queries
from indexing.backends.bm25 import Bm25Config, Bm25Index
from indexing.chunks import Chunk
from mlsearch.errors import FinetuneError


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
    index = Bm25Index(Bm25Config())
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
    split = split_queries(queries, sample_chunks, dev_fraction=0.34, seed=1)
    train_docs = {x.doc_id for x in split.train}
    dev_docs = {x.doc_id for x in split.dev}
    assert split.unit == "document" and train_docs and dev_docs and not train_docs & dev_docs
    assert train_docs == split.train_docs and dev_docs == split.dev_docs == split.dev_units
    assert len(split.dev_docs) == 3  # ceil(0.34 * 6)
    assert split.purged_queries == 0  # the articles share no text
    assert sorted(map(id, split.train + split.dev)) == sorted(map(id, queries))
    assert split_queries(queries, sample_chunks, 0.34, seed=1) == split


SECTIONS = {
    "Dropout": "Dropout zeroes random hidden units during training. It works like an ensemble of thinned "
               "networks that share weights. The rate is often one half for hidden layers.",
    "Adam": "Adam keeps running averages of gradients and squared gradients. The step is scaled per parameter "
            "by the second moment. Bias correction fixes the first steps of training.",
    "Drift": "The Kolmogorov Smirnov test compares two samples of one feature. The population stability index "
             "compares binned shares of new data. Alerts should page only when a shift persists.",
    "Canary": "A canary release sends a small share of traffic to the new model. The share grows while error "
              "rates stay within budget. A broken guardrail sends all traffic back.",
    "Vectors": "A flat index compares the query with every stored vector. Graph indexes link each vector to a "
               "few close neighbours. Inverted files search only the nearest cells.",
    "Pooling": "Max pooling keeps the largest value of each window of a feature map. Average pooling keeps the "
               "mean value instead. Pooling makes the features shift invariant.",
}
REPEATED = "Keep a copy of every model version so that any release can be rolled back within minutes of a fault."


def _notes(sections: dict[str, str], pieces: int = 3, overlap: bool = True) -> list[tuple[int, Chunk]]:
    """One document cut like the chunker does: several chunks per section, each starting with the previous
    chunk's last sentence when ``overlap``; the canary and dropout sections both repeat one paragraph."""
    chunks = []
    for heading, text in sections.items():
        sentences = text.split(". ")
        previous = ""
        for piece in range(pieces):
            words = sentences[piece] if piece < len(sentences) else " ".join(f"w{piece}x{j}" for j in range(9))
            body = f"{words} (part {piece} of {heading})."
            if heading in ("Canary", "Dropout") and piece == 1:
                body += " " + REPEATED
            chunks.append((previous + " " + body).strip())
            previous = body if overlap else ""
    headings = [h for h in sections for _ in range(pieces)]
    return [(i, Chunk(id=f"c{i}", doc_id="notes", title="ML notes", heading=h, text=t, position=i))
            for i, (h, t) in enumerate(zip(headings, chunks, strict=True))]


def _queries(chunks: list[tuple[int, Chunk]]) -> list[SyntheticQuery]:
    return [SyntheticQuery(text=f"{c.heading} query {i} {k}", kind="cloze", position=i, chunk_id=c.id,
                           doc_id=c.doc_id, positive=c.embedding_text) for i, c in chunks for k in range(2)]


def _words(text: str, n: int = 8) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def assert_no_leak(split: QuerySplit, chunks: list[tuple[int, Chunk]]) -> None:
    """Dev and train chunks share no unit, no 8-word run, and no section boundary with overlap."""
    chunk_at = dict(chunks)
    dev_positions = {q.position for q in split.dev}
    assert split.train and split.dev and split.train_units.isdisjoint(split.dev_units)
    assert {q.position for q in split.train} <= split.train_positions
    assert split.train_positions.isdisjoint(dev_positions)
    assert {split.chunk_units[p] for p in dev_positions} <= split.dev_units
    dev_runs = set().union(*(_words(chunk_at[p].text) for p in dev_positions))
    for p in split.train_positions:
        assert _words(chunk_at[p].text).isdisjoint(dev_runs)
        for neighbour in (p - 1, p + 1):
            if neighbour in dev_positions:
                assert chunk_at[neighbour].heading != chunk_at[p].heading


def test_one_document_is_split_by_section_without_overlap_across_the_split() -> None:
    chunks = _notes(SECTIONS)
    queries = _queries(chunks)
    purged = 0
    for seed in range(8):
        split = split_queries(queries, chunks, dev_fraction=0.2, seed=seed)
        assert split.unit == "section" and split.train_docs == split.dev_docs == {"notes"}
        assert_no_leak(split, chunks)
        # whole sections held out, about a fifth of the queries, and every dev query kept
        assert {split.chunk_units[q.position] for q in split.dev} == split.dev_units
        assert 1 <= len(split.dev_units) < len(SECTIONS)
        assert len(split.dev) == sum(split.chunk_units[q.position] in split.dev_units for q in queries)
        assert len(split.train) + len(split.dev) + split.purged_queries == len(queries)
        purged += split.purged_chunks
    assert purged > 0  # the repeated paragraph was purged from training whenever its twin was held out
    assert "held out by section" in describe_split(split.describe())


def test_too_few_sections_fall_back_to_contiguous_blocks_and_purge_their_overlap() -> None:
    chunks = _notes(dict(list(SECTIONS.items())[:2]), pieces=10)  # two sections: too few to hold out
    queries = _queries(chunks)
    split = split_queries(queries, chunks, dev_fraction=0.2, seed=3)
    assert split.unit == "block"
    assert_no_leak(split, chunks)
    assert split.purged_chunks >= 1  # a block boundary inside a section: the neighbour overlaps
    assert split_queries(queries, chunks, unit="section", seed=3).unit == "section"


def test_split_needs_two_units() -> None:
    chunk = Chunk(id="c0", doc_id="a", title="A", heading="", text="adam learning rate", position=0)
    one = [(0, chunk)]
    with pytest.raises(FinetuneError, match="at least 2"):
        split_queries([q("adam learning rate", doc="a"), q("adam momentum rate", doc="a")], one)
    two = [(0, chunk), (1, Chunk(id="c1", doc_id="b", title="B", heading="", text="x y", position=0))]
    pair = [q("x", doc="a"), q("y", doc="b", position=1)]
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_queries(pair, two, dev_fraction=1.0)
    with pytest.raises(ValueError, match="unknown split unit"):
        split_queries(pair, two, unit="page")
    split = split_queries(pair, two, dev_fraction=0.9, unit="document")
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


def test_hard_negatives_only_come_from_allowed_positions() -> None:
    chunks = np.eye(4, dtype=np.float32) + 0.1
    negatives = mine_hard_negatives(chunks[:1], chunks, ["a", "b", "b", "c"], [0], allowed_positions={2, 3})
    assert negatives[0] in {2, 3}
    assert mine_hard_negatives(chunks[:1], chunks, ["a", "b", "b", "c"], [0], allowed_positions={0}) == [None]
