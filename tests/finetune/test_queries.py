"""Synthetic query generators: heuristic kinds and proportions, inverse cloze, doc2query with a tiny T5."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from finetune.queries import (
    Doc2QueryGenerator,
    HeuristicGenerator,
    KeyPhrases,
    heading_question,
    make_generator,
    sentences,
)
from indexing.chunks import Chunk
from mlsearch.errors import ModelLoadError


def test_plan_gives_one_of_each_kind_then_cloze_and_key_phrases() -> None:
    assert HeuristicGenerator.plan(1) == ["heading"]
    assert HeuristicGenerator.plan(3) == ["heading", "keyphrase", "cloze"]
    assert HeuristicGenerator.plan(5) == ["heading", "keyphrase", "cloze", "cloze", "keyphrase"]


def test_heuristic_makes_every_kind_for_real_chunks(sample_chunks: list[tuple[int, Chunk]]) -> None:
    queries = HeuristicGenerator(seed=0).generate(sample_chunks, per_chunk=3)
    kinds = Counter(q.kind for q in queries)
    assert set(kinds) == {"heading", "keyphrase", "cloze"}
    assert len(queries) <= 3 * len(sample_chunks)
    chunk_at = dict(sample_chunks)
    per_chunk = Counter(q.position for q in queries)
    assert max(per_chunk.values()) <= 3
    for query in queries:
        chunk = chunk_at[query.position]
        assert (query.chunk_id, query.doc_id) == (chunk.id, chunk.doc_id)
        assert query.text.strip() and query.positive.startswith(chunk.title)
    # one heading question per section: never two for the same (document, heading)
    sections = Counter((chunk_at[q.position].doc_id, chunk_at[q.position].heading) for q in queries
                       if q.kind == "heading")
    assert max(sections.values()) == 1


def test_heuristic_is_deterministic_for_a_seed(sample_chunks: list[tuple[int, Chunk]]) -> None:
    first = HeuristicGenerator(seed=3).generate(sample_chunks, 3)
    assert first == HeuristicGenerator(seed=3).generate(sample_chunks, 3)
    assert first != HeuristicGenerator(seed=4).generate(sample_chunks, 3)


def test_inverse_cloze_removes_the_sentence_from_the_positive(sample_chunks: list[tuple[int, Chunk]]) -> None:
    removed = [q for q in HeuristicGenerator(seed=0, remove_sentence=1.0).generate(sample_chunks, 3)
               if q.kind == "cloze"]
    kept = [q for q in HeuristicGenerator(seed=0, remove_sentence=0.0).generate(sample_chunks, 3)
            if q.kind == "cloze"]
    assert removed and kept
    assert all(q.text not in q.positive for q in removed)
    assert all(q.text in " ".join(q.positive.split()) for q in kept)


def test_heading_question_uses_section_and_title() -> None:
    import random

    chunk = Chunk(id="c", doc_id="d", title="Batch normalization (BN)", heading="Why it helps", text="x")
    assert heading_question(chunk, random.Random(0)) == "why it helps in batch normalization?"
    intro = Chunk(id="c", doc_id="d", title="Dropout", heading="", text="x")
    assert "dropout" in (heading_question(intro, random.Random(0)) or "")


def test_sentences_skip_code_tables_and_short_lines() -> None:
    text = ("Short one.\n\n| a | b |\n|---|---|\n\n```python\nx = compute(the, whole, thing, at, once, now)\n```\n"
            "- The learning rate is scaled per parameter by Adam.")
    assert sentences(text) == ["The learning rate is scaled per parameter by Adam."]


def test_key_phrases_are_distinctive_and_do_not_repeat_words() -> None:
    texts = ["adam keeps running averages of squared gradients", "dropout zeroes activations at random",
             "adam and momentum are optimizers"]
    phrases = KeyPhrases(texts, top=5).phrases(1)
    words = [w for p in phrases for w in p.split()]
    assert "dropout" in words and len(words) == len(set(words))


def test_doc2query_samples_per_chunk_in_batches(tiny_t5_dir: Path, sample_chunks: list[tuple[int, Chunk]]) -> None:
    chunks = sample_chunks[:5]
    generator = Doc2QueryGenerator(tiny_t5_dir, seed=0, batch_size=2, max_new_tokens=6)  # 5 chunks: 2+2+1
    queries = generator.generate(chunks, per_chunk=2)
    assert len(queries) == 10
    assert Counter(q.position for q in queries) == {p: 2 for p, _ in chunks}
    assert all(q.kind == "doc2query" and q.text for q in queries)
    again = Doc2QueryGenerator(tiny_t5_dir, seed=0, batch_size=2, max_new_tokens=6).generate(chunks, 2)
    assert [q.text for q in again] == [q.text for q in queries]


def test_make_generator_errors(tmp_path: Path) -> None:
    assert make_generator("heuristic").name == "heuristic"
    with pytest.raises(ValueError, match="unknown generator"):
        make_generator("gpt")
    with pytest.raises(ValueError, match="--generator-model"):
        make_generator("doc2query")
    with pytest.raises(ModelLoadError, match="not found"):
        make_generator("doc2query", model_path=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="cannot load"):
        make_generator("doc2query", model_path=tmp_path / "empty")
