"""Query files: plain lines or JSON lines, read the same way by drift monitoring and fine-tuning."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlsearch.errors import DatasetError, QueryFileError
from search.query_file import read_query_file


def test_plain_lines_and_json_lines_mix_in_one_file(tmp_path: Path) -> None:
    path = tmp_path / "queries.txt"
    path.write_text('# logged\nwhat is dropout\n\n  how   does adam work \n'
                    '{"query": "adam learning rate", "ts": 1}\n{"text": "psi bins"}\n')
    assert read_query_file(path) == ["what is dropout", "how does adam work", "adam learning rate", "psi bins"]


def test_a_beir_queries_file_reads_its_text_field(tmp_path: Path) -> None:
    path = tmp_path / "queries.jsonl"
    path.write_text('{"_id": "q1", "text": "what is PSI"}\n\n{"_id": "q2", "text": "", "query": "KS test"}\n')
    assert read_query_file(path) == ["what is PSI", "KS test"]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("queries.txt", "ok\n{not json\n", r"queries.txt:2: not valid JSON"),
    ("queries.txt", 'ok\n{"other": 1}\n', r"queries.txt:2: .*'text' or 'query'"),
    ("queries.jsonl", '{"text": "ok"}\nplain words\n', r"queries.jsonl:2: not valid JSON"),
    ("queries.jsonl", '["a list"]\n', r"queries.jsonl:1: expected a JSON object, got list"),
    ("queries.txt", "\n# only a comment\n", "holds no queries"),
])
def test_errors_name_the_file_and_the_line(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(QueryFileError, match=message):
        read_query_file(path)


def test_a_missing_or_undecodable_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(QueryFileError, match="stream file .*missing.txt not found"):
        read_query_file(tmp_path / "missing.txt", "stream")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DatasetError, match="cannot be read"):  # a QueryFileError is a DatasetError
        read_query_file(binary)
