"""Reference files and the reference store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from drift.features import QueryObservation
from drift.reference import Reference, ReferenceStore, read_queries
from mlsearch.errors import DriftError


def test_read_queries_plain_and_jsonl(tmp_path: Path) -> None:
    plain = tmp_path / "q.txt"
    plain.write_text("# reference\nwhat is dropout\n\n  how   does adam work \n")
    assert read_queries(plain) == ["what is dropout", "how does adam work"]
    beir = tmp_path / "queries.jsonl"
    beir.write_text('{"_id": "q1", "text": "what is PSI"}\n{"_id": "q2", "text": "KS test"}\n')
    assert read_queries(beir) == ["what is PSI", "KS test"]


@pytest.mark.parametrize(("content", "message"), [
    (None, "not found"), ("", "holds no queries"), ("\n# only a comment\n", "holds no queries"),
])
def test_read_queries_refuses_missing_or_empty_files(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "reference.txt"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DriftError, match=message):
        read_queries(path, "reference")


def test_read_queries_names_a_bad_jsonl_line(tmp_path: Path) -> None:
    path = tmp_path / "queries.jsonl"
    path.write_text('{"text": "ok"}\n{"id": 2}\n')
    with pytest.raises(DriftError, match=r"queries.jsonl:2: .*'text'"):
        read_queries(path)


def test_store_round_trip_and_reset(tmp_path: Path, make_observations: Callable[..., list[QueryObservation]]) -> None:
    store = ReferenceStore(tmp_path / "drift")
    assert store.load() is None and store.collecting_after() == 0
    reference = Reference(make_observations(12), source="file:ref.txt", last_id=7, model="fake", digest="abc")
    store.save(reference)
    loaded = store.load()
    assert loaded is not None
    assert loaded.meta() == reference.meta()
    assert np.allclose(loaded.observations[3].embedding, reference.observations[3].embedding)
    assert [o.top_score for o in loaded.observations] == pytest.approx([o.top_score for o in reference.observations])
    assert [o.keyword_match for o in loaded.observations] == pytest.approx(
        [o.keyword_match for o in reference.observations])
    store.reset(after_id=42)
    assert store.load() is None and store.collecting_after() == 42


def test_an_unreadable_stored_reference_is_ignored(tmp_path: Path) -> None:
    store = ReferenceStore(tmp_path)
    (tmp_path / ReferenceStore.META).write_text("{}")
    (tmp_path / ReferenceStore.ARRAYS).write_bytes(b"garbage")
    assert store.load() is None
