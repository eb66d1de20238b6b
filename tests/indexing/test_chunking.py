"""Chunking: token bound, headings, code fences and table rows kept whole, stable ids, overlap."""

from __future__ import annotations

import re

import pytest

from indexing.chunking import Chunker, ChunkingConfig, parse_blocks
from indexing.document import Document
from tests.fakes import HashingEncoder

ENCODER = HashingEncoder(max_seq_length=64)


def make_doc(text: str, doc_id: str = "doc", title: str = "Title", fmt: str = "markdown") -> Document:
    return Document(id=doc_id, content=text, meta={"doc_id": doc_id, "title": title, "tags": ["t"], "format": fmt})


def chunker(target: int = 40, limit: int = 64, overlap: int = 8) -> Chunker:
    return Chunker(ENCODER.count_tokens, ChunkingConfig(target_tokens=target, max_tokens=limit, overlap_tokens=overlap))


LONG_CODE = "```python\n" + "\n".join(f"value_{i} = compute(value_{i - 1}, step={i})" for i in range(1, 40)) + "\n```"
LONG_TABLE = "| name | value | note |\n|---|---|---|\n" + "\n".join(
    f"| row {i} | {i * 3} | a short note about row {i} |" for i in range(40)
)
LONG_PARAGRAPH = " ".join(f"Sentence number {i} talks about gradient descent and learning rates." for i in range(60))
NO_SPACES = "x" * 3000
DOCUMENT = f"""# Title

Intro paragraph.

## Code

{LONG_CODE}

## Table

{LONG_TABLE}

### Prose

{LONG_PARAGRAPH}

## Blob

{NO_SPACES}

$$
\\hat\\Theta = \\arg\\min_\\Theta L(\\Theta) + \\lambda R(\\Theta)
$$
"""


def test_no_chunk_exceeds_the_limit_measured_by_the_model_tokenizer() -> None:
    chunks = chunker().chunk_document(make_doc(DOCUMENT))
    assert len(chunks) > 10
    for chunk in chunks:
        exact = ENCODER.count_tokens([chunk.embedding_text])[0]
        assert exact == chunk.tokens
        assert exact <= 64, chunk.embedding_text


def test_heading_path_is_recorded_without_repeating_the_title() -> None:
    chunks = chunker().chunk_document(make_doc(DOCUMENT))
    headings = {c.heading for c in chunks}
    assert "" in headings  # the intro, before any sub-heading
    assert {"Code", "Table", "Table > Prose", "Blob"} <= headings
    assert all(c.doc_id == "doc" and c.title == "Title" for c in chunks)
    assert all(c.tags == ("t",) for c in chunks)


def test_code_blocks_are_split_between_lines_and_refenced() -> None:
    chunks = [c for c in chunker().chunk_document(make_doc(DOCUMENT)) if c.heading == "Code"]
    assert len(chunks) > 1
    original_lines = set(LONG_CODE.split("\n"))
    for chunk in chunks:
        lines = chunk.text.split("\n")
        assert lines[0] == "```python" and lines[-1] == "```"
        assert set(lines) <= original_lines  # every line is a whole line of the original
    body = [line for c in chunks for line in c.text.split("\n")[1:-1]]
    assert body == LONG_CODE.split("\n")[1:-1]  # nothing lost, nothing repeated


def test_table_rows_are_never_cut_and_the_header_is_repeated() -> None:
    chunks = [c for c in chunker().chunk_document(make_doc(DOCUMENT)) if c.heading == "Table"]
    assert len(chunks) > 1
    rows = LONG_TABLE.split("\n")
    for chunk in chunks:
        lines = chunk.text.split("\n")
        assert lines[:2] == rows[:2]
        assert set(lines) <= set(rows)
    body = [line for c in chunks for line in c.text.split("\n")[2:]]
    assert body == rows[2:]


def test_small_code_block_stays_in_one_chunk() -> None:
    text = "## A\n\nSome words.\n\n```\nprint(1)\nprint(2)\n```\n\nMore words."
    chunks = chunker(target=200, limit=256).chunk_document(make_doc(text))
    fenced = [c for c in chunks if "```" in c.text]
    assert len(fenced) == 1 and fenced[0].text.count("```") == 2


def test_long_prose_overlaps_with_the_previous_chunk() -> None:
    chunks = [c for c in chunker(overlap=16).chunk_document(make_doc(DOCUMENT)) if c.heading == "Table > Prose"]
    assert len(chunks) > 2
    shared = 0
    for before, after in zip(chunks, chunks[1:], strict=False):
        first_sentence = re.split(r"(?<=\.)\s", after.text)[0]
        shared += first_sentence in before.text
    assert shared >= 1


def test_ids_are_stable_and_change_only_with_the_text() -> None:
    first = chunker().chunk_document(make_doc(DOCUMENT))
    second = chunker().chunk_document(make_doc(DOCUMENT))
    assert [c.id for c in first] == [c.id for c in second]
    assert len({c.id for c in first}) == len(first)
    edited = chunker().chunk_document(make_doc(DOCUMENT.replace("Intro paragraph.", "Another intro.")))
    changed = {c.id for c in first} ^ {c.id for c in edited}
    assert 0 < len(changed) <= 4


def test_repeated_passages_get_distinct_ids() -> None:
    text = "## A\n\nSame words.\n\n" + "x " * 100 + "\n\nSame words."
    chunks = chunker(target=20, limit=64, overlap=0).chunk_document(make_doc(text))
    same = [c for c in chunks if c.text == "Same words."]
    assert len(same) == 2 and same[0].id != same[1].id


def test_plain_text_ignores_markdown_syntax() -> None:
    blocks = parse_blocks("# not a heading\n\n| not | a table |", markdown=False)
    assert [b.kind for b in blocks] == ["text", "text"]
    assert all(b.heading == () for b in blocks)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="overlap_tokens"):
        ChunkingConfig(target_tokens=10, max_tokens=64, overlap_tokens=10)
    with pytest.raises(ValueError, match="max_tokens"):
        ChunkingConfig(target_tokens=10, max_tokens=4, overlap_tokens=0)
