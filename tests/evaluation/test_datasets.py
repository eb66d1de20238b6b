"""Dataset loading: BEIR folders, qrels over a folder corpus, answer spans, the built-in set, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.datasets import (
    BUILTIN_DIR,
    iter_beir_corpus,
    load_dataset,
    normalize_text,
    span_qrels,
)
from indexing.chunks import Chunk
from indexing.documents import load_corpus
from mlsearch.errors import DatasetError
from tests.conftest import CORPUS_DIR
from tests.evaluation.builders import write_beir, write_qrels, write_queries


def test_beir_folder_loads_only_queries_with_a_relevant_judgement(beir_dir: Path) -> None:
    dataset = load_dataset(beir_dir)
    assert (dataset.kind, dataset.level, dataset.name) == ("beir", "document", "tinybeir")
    assert set(dataset.queries) == {"q1", "q2", "q3", "q4"}
    assert dataset.skipped_queries == ["q5"]
    assert dataset.qrels["q2"] == {"d2": 1, "d6": 1}
    assert dataset.corpus_file == beir_dir / "corpus.jsonl"
    assert [d.id for d in iter_beir_corpus(beir_dir / "corpus.jsonl")][:3] == ["d1", "d2", "doc/3"]
    assert len(dataset.fingerprint) == 64


def test_fingerprint_changes_with_the_corpus(beir_dir: Path) -> None:
    before = load_dataset(beir_dir).fingerprint
    with (beir_dir / "corpus.jsonl").open("a") as handle:
        handle.write(json.dumps({"_id": "d9", "text": "one more"}) + "\n")
    assert load_dataset(beir_dir).fingerprint != before


def test_qrels_folder_judges_a_markdown_corpus(qrels_dir: Path, tiny_corpus: Path) -> None:
    dataset = load_dataset(qrels_dir, corpus_dir=tiny_corpus)
    assert (dataset.kind, dataset.level, dataset.corpus_dir) == ("qrels", "document", tiny_corpus)
    assert dataset.qrels["q3"] == {"drift": 2}


@pytest.mark.parametrize(
    ("where", "content", "message"),
    [
        ("queries.jsonl", '{"_id": "q1", "text": "fine"}\n{"_id": "q2", "text": \n', "queries.jsonl:2: not valid JSON"),
        ("queries.jsonl", '{"_id": "q1"}\n', "queries.jsonl:1: missing field 'text'"),
        ("queries.jsonl", '["q1", "text"]\n', "queries.jsonl:1: expected a JSON object"),
        ("queries.jsonl", '{"_id": "q1", "text": "a"}\n\n{"_id": "q1", "text": "b"}\n',
         "queries.jsonl:3: query id 'q1' appears twice"),
        ("queries.jsonl", '{"_id": "q 1", "text": "a"}\n', "queries.jsonl:1: id 'q 1'"),
        ("qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\n", "test.tsv:2: expected 3 tab-separated fields"),
        ("qrels/test.tsv", "q1\td1\t1\nq1\td2\thigh\n", "test.tsv:2: score 'high' is not an integer"),
        ("qrels/test.tsv", "q1\td1\t1\nq77\td2\t1\n", "test.tsv:2: query id 'q77' is not in the queries file"),
        ("qrels/test.tsv", "q1\td1\t1\nq1\td1\t2\n", "test.tsv:2: query 'q1' judges 'd1' twice"),
        ("qrels/test.tsv", "q1\td1\t0\n", "no query has a relevant judgement"),
    ],
)
def test_malformed_beir_files_name_the_file_and_line(
    tmp_path: Path, where: str, content: str, message: str
) -> None:
    folder = write_beir(tmp_path / "bad", queries={"q1": "a question"}, qrels=[("q1", "d1", 1)])
    (folder / where).write_text(content)
    with pytest.raises(DatasetError, match=message.replace("[", r"\[")):
        load_dataset(folder)


def test_malformed_corpus_line_is_reported_when_read(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "bad", queries={"q1": "a question"}, qrels=[("q1", "d1", 1)])
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n{"_id": "d2", "text": 5.5}\n')
    with pytest.raises(DatasetError, match=r"corpus.jsonl:2: field 'text' must be a string"):
        list(iter_beir_corpus(folder / "corpus.jsonl"))
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n{"_id": "d1", "text": "again"}\n')
    with pytest.raises(DatasetError, match=r"corpus.jsonl:2: document id 'd1' appears twice"):
        list(iter_beir_corpus(folder / "corpus.jsonl"))


def test_missing_or_unknown_datasets_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset not found"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="not a dataset"):
        load_dataset(tmp_path / "empty")
    folder = tmp_path / "noqrels"
    folder.mkdir()
    write_queries(folder, {"q1": "x"})
    with pytest.raises(DatasetError, match=r"missing .*qrels/test.tsv"):
        load_dataset(folder)
    write_qrels(folder, [("q1", "d", 1)])
    with pytest.raises(DatasetError, match=r"missing .*qrels/dev.tsv"):
        load_dataset(folder, split="dev")


def test_answer_span_file(span_file: Path, tiny_corpus: Path) -> None:
    dataset = load_dataset(span_file, corpus_dir=tiny_corpus)
    assert (dataset.kind, dataset.level, dataset.name) == ("spans", "chunk", "spans")
    assert dataset.queries["s2"] == "what does momentum accumulate"
    assert dataset.evidence["s3"] == "flat, IVF and HNSW indexes"
    assert dataset.qrels == {}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("s1\tquery only\n", r"spans.tsv:1: expected 3 tab-separated fields"),
        ("s1\tq\te\n\ns1\tq2\te2\n", r"spans.tsv:3: query id 's1' appears twice"),
        ("s1\tq\t  ...  \n", r"spans.tsv:1: query 's1' has no evidence text"),
        ("s1\t\tevidence\n", r"spans.tsv:1: query 's1' is empty"),
    ],
)
def test_malformed_span_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "spans.tsv"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_dataset(path)


def test_normalize_text_ignores_case_punctuation_and_whitespace() -> None:
    assert normalize_text("Adam's  learning-rate,\nper PARAMETER.") == "adam s learning rate per parameter"
    assert normalize_text("ＦＡＩＳＳ—HNSW") == "faiss hnsw"


def test_span_qrels_matches_whole_words_in_any_chunking() -> None:
    chunks = [
        Chunk(id="c1", doc_id="a", title="T", heading="", text="Momentum accumulates a velocity vector, fast."),
        Chunk(id="c2", doc_id="a", title="T", heading="", text="The velocity\nvector  is accumulated."),
        Chunk(id="c3", doc_id="b", title="T", heading="", text="MOMENTUM ACCUMULATES A VELOCITY-VECTOR!"),
    ]
    qrels, unmatched = span_qrels({"s1": "momentum accumulates a velocity vector", "s2": "city vector",
                                   "s3": "velocity vector"}, chunks)
    assert qrels == {"s1": {"c1": 1, "c3": 1}, "s3": {"c1": 1, "c2": 1, "c3": 1}}
    assert unmatched == ["s2"]  # "city" is only part of a word


def test_builtin_set_judges_the_shipped_corpus() -> None:
    if not (BUILTIN_DIR / "queries.jsonl").is_file() or not CORPUS_DIR.is_dir():
        pytest.skip("the built-in set or corpus/ is not there yet")
    dataset = load_dataset("builtin", corpus_dir=CORPUS_DIR)
    assert dataset.name == "builtin" and dataset.kind == "qrels"
    assert len(dataset.queries) >= 60
    doc_ids = {d.meta["doc_id"] for d in load_corpus(CORPUS_DIR).documents}
    judged = {doc for docs in dataset.qrels.values() for doc in docs}
    assert judged <= doc_ids, f"qrels name articles that are not in corpus/: {sorted(judged - doc_ids)}"
